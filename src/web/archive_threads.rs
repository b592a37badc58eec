//! A page of a month's posts ordered as threads: each post under the one
//! it answers (its `parent`, the In-Reply-To or last References id) when
//! that is on the page, depth first, in date order. Pure: a post off the
//! page is looked up through the closure the caller gives.
//!
//! Trusts nothing in the posts: parents may be missing, point at
//! themselves or form cycles; every post appears exactly once.

use super::archive_service::PostView;
use super::service::ServiceResult;
use serde::Serialize;

/// A post in a month's threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadItem {
    #[serde(flatten)]
    pub post: PostView,
    /// 0 for a thread's first post on the page.
    pub depth: usize,
    /// How far the page indents it: the depth, at most 10.
    pub indent: usize,
    /// The archived post it answers, if that is archived.
    pub parent_id: Option<i64>,
    /// The post it answers is archived, but not on this page.
    pub parent_elsewhere: bool,
}

/// Orders a page of posts (in date order) as threads: each post under the
/// one it answers when that is on the page, depth first, in date order;
/// a post answering one archived elsewhere starts a thread and says so.
/// `archived(message_id)` finds a post off the page.
pub fn threads(
    posts: Vec<PostView>,
    mut archived: impl FnMut(&str) -> ServiceResult<Option<i64>>,
) -> ServiceResult<Vec<ThreadItem>> {
    use std::collections::HashMap;
    let index: HashMap<&str, usize> = posts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.message_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); posts.len()];
    let mut roots = Vec::new();
    let mut elsewhere: Vec<Option<i64>> = vec![None; posts.len()];
    for (i, p) in posts.iter().enumerate() {
        match p.parent.as_deref().map(|m| (m, index.get(m))) {
            Some((_, Some(&parent))) if parent != i => children[parent].push(i),
            Some((m, None)) => {
                elsewhere[i] = archived(m)?;
                roots.push(i);
            }
            _ => roots.push(i),
        }
    }
    let mut seen = vec![false; posts.len()];
    let mut order: Vec<(usize, usize, Option<usize>)> = Vec::with_capacity(posts.len());
    // posts in a cycle of parents have no root: each then starts one
    let starts: Vec<usize> = roots.into_iter().chain(0..posts.len()).collect();
    for start in starts {
        let mut stack = vec![(start, 0, None)];
        while let Some((i, depth, parent)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            order.push((i, depth, parent));
            for &c in children[i].iter().rev() {
                stack.push((c, depth + 1, Some(i)));
            }
        }
    }
    let mut slots: Vec<Option<PostView>> = posts.into_iter().map(Some).collect();
    let ids: Vec<i64> = slots.iter().flatten().map(|p| p.id).collect();
    Ok(order
        .into_iter()
        .filter_map(|(i, depth, parent)| {
            Some(ThreadItem {
                post: slots[i].take()?,
                depth,
                indent: depth.min(10),
                parent_id: parent.map(|p| ids[p]).or(elsewhere[i]),
                parent_elsewhere: parent.is_none() && elsewhere[i].is_some(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: i64, mid: &str, parent: Option<&str>) -> PostView {
        PostView {
            id,
            message_id: mid.into(),
            date: id,
            date_text: String::new(),
            from: String::new(),
            subject: String::new(),
            parent: parent.map(str::to_string),
        }
    }

    #[test]
    fn replies_nest_under_their_parents_depth_first() {
        let page = vec![
            p(1, "a", None),
            p(2, "b", None),
            p(3, "a1", Some("a")),
            p(4, "b1", Some("b")),
            p(5, "a1x", Some("a1")),
            p(6, "old-reply", Some("earlier")),
            p(7, "lost", Some("never-archived")),
            p(8, "x", Some("y")),
            p(9, "y", Some("x")),
            p(10, "self", Some("self")),
        ];
        let items = threads(page, |m| Ok((m == "earlier").then_some(99))).unwrap();
        let got: Vec<(i64, usize, Option<i64>, bool)> = items
            .iter()
            .map(|t| (t.post.id, t.depth, t.parent_id, t.parent_elsewhere))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, None, false),
                (3, 1, Some(1), false),
                (5, 2, Some(3), false),
                (2, 0, None, false),
                (4, 1, Some(2), false),
                (6, 0, Some(99), true),
                (7, 0, None, false),
                (10, 0, None, false),
                (8, 0, None, false),
                (9, 1, Some(8), false),
            ]
        );
    }
}
