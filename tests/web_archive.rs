//! The list archive over real HTTP on 127.0.0.1, against the in-process
//! daemon with a real SQLite store: posts sent over real SMTP and archived
//! by the real pipeline, then the months, a month as threads (In-Reply-To
//! and References-only replies nested under their parents), by date and by
//! author, one message (a `<script>` subject escaped, an HTML body
//! sanitized, no remote content, the CSP), an attachment downloaded byte
//! for byte, full-text search, the Atom feed, the lists page's links, and
//! who may read: public, members and owners archives for anonymous
//! browsers, non-members, members, owners and admins, on the pages and the
//! REST API (tokens made by the real binary).

mod common;
mod web_support;

use base64::Engine;
use common::sink::Sink;
use common::*;
use listd::daemon::DaemonHandle;
use serde_json::Value;
use web_support::*;

const ANN: &str = "ann@example.org";
const BOB: &str = "bob@example.org";
const OWNER: &str = "owner@example.org";
const ADMIN: &str = "admin@example.org";
/// A member of `pub` only: logs in, but reads neither `dev` nor `ops`.
const STRANGER: &str = "stranger@example.net";

/// The attachment's bytes: not UTF-8, with NUL and CR LF inside.
const ATTACHED: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x01\xff\xfe binary\r\n.\r\nend";

struct Site {
    sink: Sink,
    env: TestEnv,
    d: DaemonHandle,
    base: String,
}

/// `dev` (members read the archive), `pub` (anyone), `ops` (owners), ANN
/// and BOB members of all three, STRANGER of `pub`.
async fn archive_site() -> Site {
    let sink = Sink::start();
    let owners = format!("owners: [{OWNER}]\n");
    let (b, port) = site(&sink, &format!("{owners}archive_access: members\n"));
    let env = b
        .set("web", "admins", &format!("[\"{ADMIN}\"]"))
        .list("pub", &format!("{owners}archive_access: anyone\n"))
        .list("ops", &format!("{owners}archive_access: owners\n"))
        .build();
    for l in [LIST, "pub", "ops"] {
        env.add_members(l, &[ANN, BOB]);
    }
    env.add_members("pub", &[STRANGER]);
    let d = env.start().await;
    Site {
        sink,
        env,
        d,
        base: format!("http://127.0.0.1:{port}"),
    }
}

impl Site {
    /// Sends `message` from `from` to `list` and waits until it is
    /// archived; its archive id.
    async fn post(&self, list: &str, from: &str, message: &str) -> i64 {
        archived_post(&self.env, &self.d, list, from, message).await
    }

    /// The month (`YYYY-MM`) post `id` was archived in.
    fn month_of(&self, id: i64) -> String {
        let path: String = self
            .env
            .store()
            .query_row(
                "SELECT mbox_path FROM archive_index WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        path.rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".mbox")
            .to_string()
    }

    fn token(&self, name: &str, role: &str) -> String {
        let (code, out, err) = run_cli(&self.env, &["api-token", "create", name, "--role", role]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    }
}

fn plain(
    list: &str,
    from: &str,
    id: &str,
    date: &str,
    subject: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "From: {from}\r\nTo: {list}@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: {date}\r\n{extra}\r\n{body}\r\n"
    )
}

/// The thread of three (a root, an In-Reply-To reply, a References-only
/// reply to the reply), an HTML post with a `<script>` subject, a post with
/// an attachment; their ids in that order.
async fn fill(s: &Site, list: &str) -> [i64; 5] {
    let root = s
        .post(
            list,
            ANN,
            &plain(
                list,
                ANN,
                &format!("root.{list}@t"),
                "Mon, 02 Nov 2026 10:00:00 +0000",
                "Release plan",
                "",
                "The zebra release is on Friday.",
            ),
        )
        .await;
    let reply = s
        .post(
            list,
            BOB,
            &plain(
                list,
                BOB,
                &format!("reply.{list}@t"),
                "Mon, 02 Nov 2026 11:00:00 +0000",
                "Re: Release plan",
                &format!("In-Reply-To: <root.{list}@t>\r\n"),
                "Sounds good.",
            ),
        )
        .await;
    let deep = s
        .post(
            list,
            ANN,
            &plain(
                list,
                ANN,
                &format!("deep.{list}@t"),
                "Mon, 02 Nov 2026 12:00:00 +0000",
                "Re: Re: Release plan",
                &format!("References: <root.{list}@t> <reply.{list}@t>\r\n"),
                "Agreed, by References only.",
            ),
        )
        .await;
    let html = format!(
        "From: {BOB}\r\nTo: {list}@{DOMAIN}\r\nSubject: <script>alert(1)</script> hello\r\nMessage-ID: <html.{list}@t>\r\n\
Date: Mon, 02 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n\
--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain version\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Hello <b>bold world</b></p><script>alert('x')</script><img src=\"http://evil.example/track.gif\">\
<a href=\"https://example.org/page\">a link</a>\r\n--alt--\r\n"
    );
    let html = s.post(list, BOB, &html).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(ATTACHED);
    let att = format!(
        "From: {ANN}\r\nTo: {list}@{DOMAIN}\r\nSubject: the logo\r\nMessage-ID: <att.{list}@t>\r\n\
Date: Mon, 02 Nov 2026 14:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=mix\r\n\r\n\
--mix\r\nContent-Type: text/plain\r\n\r\nlogo attached\r\n--mix\r\nContent-Type: image/png; name=\"logo.png\"\r\n\
Content-Disposition: attachment; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--mix--\r\n"
    );
    let att = s.post(list, ANN, &att).await;
    [root, reply, deep, html, att]
}

/// GETs `url` (with a cookie, if any): (status, body, headers).
async fn fetch(url: &str, cookie: Option<&str>) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let mut r = client().get(url);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.bytes().await.unwrap().to_vec(), headers)
}

async fn page(url: &str, cookie: Option<&str>) -> (u16, String, reqwest::header::HeaderMap) {
    let (status, body, headers) = fetch(url, cookie).await;
    (status, String::from_utf8(body).unwrap(), headers)
}

/// The `<li id="m-ID" ...>` line of a month page.
fn item(page: &str, id: i64) -> &str {
    let at = page
        .find(&format!("id=\"m-{id}\""))
        .unwrap_or_else(|| panic!("post {id} not on {page}"));
    page[at..].split('>').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_shows_months_threads_messages_attachments_and_search() {
    let s = archive_site().await;
    let [root, reply, deep, html, att] = fill(&s, "pub").await;
    let month = s.month_of(root);
    let arch = format!("{}/archive/pub", s.base);

    // months, with counts; every archive page has the CSP
    let (status, p, h) = page(&arch, None).await;
    assert_eq!(status, 200, "{p}");
    assert!(p.contains(&format!("href=\"/archive/pub/{month}\"")), "{p}");
    assert!(p.contains("5 posts"), "{p}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("img-src data:"),
        "{csp}"
    );

    // threads: the reply under the root, the References-only one under it
    let (status, p, _) = page(&format!("{arch}/{month}"), None).await;
    assert_eq!(status, 200, "{p}");
    assert!(item(&p, root).contains("data-depth=\"0\""), "{p}");
    assert!(item(&p, reply).contains(&format!("data-depth=\"1\" data-parent=\"{root}\"")));
    assert!(item(&p, deep).contains(&format!("data-depth=\"2\" data-parent=\"{reply}\"")));
    assert!(item(&p, html).contains("data-depth=\"0\""));
    let pos = |id: i64| p.find(&format!("id=\"m-{id}\"")).unwrap();
    assert!(pos(root) < pos(reply) && pos(reply) < pos(deep) && pos(deep) < pos(html));
    assert!(!p.contains("<script>alert"), "the subject is escaped: {p}");
    assert!(p.contains("&lt;script&gt;alert(1)&lt;/script&gt; hello"));

    // by author: ANN's three, then BOB's two; by date: as sent
    let (_, p, _) = page(&format!("{arch}/{month}?by=author"), None).await;
    let order: Vec<usize> = [root, deep, att, reply, html]
        .iter()
        .map(|id| p.find(&format!("id=\"m-{id}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{p}");
    let (_, p, _) = page(&format!("{arch}/{month}?by=date"), None).await;
    let order: Vec<usize> = [root, reply, deep, html, att]
        .iter()
        .map(|id| p.find(&format!("id=\"m-{id}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{p}");
    // refusals: a bad month, a bad order, a bad cursor, an empty month
    assert_eq!(page(&format!("{arch}/2026-13"), None).await.0, 400);
    assert_eq!(page(&format!("{arch}/{month}?by=size"), None).await.0, 400);
    assert_eq!(page(&format!("{arch}/{month}?after=x"), None).await.0, 400);
    assert_eq!(
        page(&format!("{arch}/{month}?after=999999"), None).await.0,
        400
    );
    let (status, p, _) = page(&format!("{arch}/1999-01"), None).await;
    assert_eq!(status, 200);
    assert!(p.contains("No posts on this page."), "{p}");

    // one message: escaped subject, sanitized HTML, thread links
    let (status, p, h) = page(&format!("{arch}/msg/{html}"), None).await;
    assert_eq!(status, 200, "{p}");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(
        p.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; hello</title>"),
        "{p}"
    );
    assert!(p.contains("<b>bold world</b>"), "{p}");
    assert!(p.contains("rel=\"nofollow noopener noreferrer\""), "{p}");
    for gone in ["<script", "evil.example", "alert('x')"] {
        assert!(!p.contains(gone), "{gone} in {p}");
    }
    let (_, p, _) = page(&format!("{arch}/msg/{deep}"), None).await;
    assert!(
        p.contains(&format!("href=\"/archive/pub/msg/{reply}\" id=\"parent\"")),
        "{p}"
    );
    assert!(p.contains("Agreed, by References only."), "{p}");
    let (_, p, _) = page(&format!("{arch}/msg/{root}"), None).await;
    assert!(
        p.contains(&format!("href=\"/archive/pub/msg/{reply}\"")),
        "replies: {p}"
    );
    assert_eq!(page(&format!("{arch}/msg/999999"), None).await.0, 404);
    assert_eq!(page(&format!("{arch}/msg/abc"), None).await.0, 404);
    // another list's post is not this list's
    let other = s
        .post(
            LIST,
            ANN,
            &plain(
                LIST,
                ANN,
                "dev.only@t",
                "Mon, 02 Nov 2026 15:00:00 +0000",
                "dev only",
                "",
                "x",
            ),
        )
        .await;
    assert_eq!(page(&format!("{arch}/msg/{other}"), None).await.0, 404);

    // the attachment: listed, downloaded byte for byte, never rendered
    let (_, p, _) = page(&format!("{arch}/msg/{att}"), None).await;
    let at = p.find("logo.png").unwrap_or_else(|| panic!("{p}"));
    let href_at = p[..at].rfind("href=\"").unwrap() + 6;
    let href = p[href_at..].split('"').next().unwrap().to_string();
    assert!(
        href.starts_with(&format!("/archive/pub/msg/{att}/part/")),
        "{href}"
    );
    let (status, bytes, h) = fetch(&format!("{}{href}", s.base), None).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, ATTACHED);
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let disp = h["content-disposition"].to_str().unwrap();
    assert!(
        disp.starts_with("attachment; filename=\"logo.png\""),
        "{disp}"
    );
    assert_eq!(
        fetch(&format!("{arch}/msg/{att}/part/9"), None).await.0,
        404
    );
    assert_eq!(
        fetch(&format!("{arch}/msg/{att}/part/-1"), None).await.0,
        404
    );

    // search: a word in one body, newest first, a snippet; not another word
    let (status, p, _) = page(&format!("{arch}/search?q=ZEBRA"), None).await;
    assert_eq!(status, 200, "{p}");
    assert!(p.contains(&format!("id=\"hit-{root}\"")), "{p}");
    assert!(p.contains("The zebra release is on Friday."), "{p}");
    assert!(!p.contains(&format!("id=\"hit-{reply}\"")), "{p}");
    assert!(!p.contains("id=\"indexing\""), "the index is complete: {p}");
    let (_, p, _) = page(&format!("{arch}/search?q=giraffe"), None).await;
    assert!(p.contains("id=\"no-hits\""), "{p}");
    let (_, p, _) = page(&format!("{arch}/search?q=release"), None).await;
    let hit = |id: i64| {
        p.find(&format!("id=\"hit-{id}\""))
            .unwrap_or_else(|| panic!("{p}"))
    };
    assert!(
        hit(deep) < hit(reply) && hit(reply) < hit(root),
        "newest first: {p}"
    );
    let (_, p, _) = page(&format!("{arch}/search?q=%3Cscript%3E"), None).await;
    assert!(
        p.contains(&format!("id=\"hit-{html}\"")) && !p.contains("<script>"),
        "{p}"
    );
    assert_eq!(page(&format!("{arch}/search?q=ab"), None).await.0, 400);
    let (status, p, _) = page(&format!("{arch}/search"), None).await;
    assert_eq!(status, 200, "the bare form: {p}");

    // the Atom feed: well-formed, escaped, entries linked
    let (status, xml, h) = page(&format!("{arch}/atom.xml"), None).await;
    assert_eq!(status, 200, "{xml}");
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/atom+xml"));
    assert!(xml.starts_with(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">"
    ));
    assert_eq!(xml.matches("<entry>").count(), 5, "{xml}");
    assert_eq!(xml.matches("</entry>").count(), 5);
    assert!(
        xml.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; hello</title>"),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<id>{arch}/msg/{root}</id>")),
        "{xml}"
    );
    assert!(
        xml.contains("<updated>2026-11-02T14:00:00Z</updated>"),
        "{xml}"
    );
    assert!(!xml.contains("<script"), "{xml}");
    assert!(well_formed(&xml), "{xml}");
    s.d.shutdown().await;
}

/// A small check of XML well-formedness: tags nest and close in order,
/// and every `&` starts one of the five entities.
fn well_formed(xml: &str) -> bool {
    let body = xml.split_once("?>").map_or(xml, |(_, b)| b);
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        let entities_ok = text.match_indices('&').all(|(j, _)| {
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| text[j..].starts_with(e))
        });
        if !entities_ok || text.contains('>') {
            return false;
        }
        let Some(end) = rest[i..].find('>') else {
            return false;
        };
        let tag = &rest[i + 1..i + end];
        rest = &rest[i + end + 1..];
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if tag.starts_with('/') {
            if stack.pop() != Some(name) {
                return false;
            }
        } else if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    stack.is_empty() && rest.trim().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reads_what_archive_access_allows_on_pages_and_api() {
    let s = archive_site().await;
    let [dev_root, ..] = fill(&s, LIST).await;
    let ops = s
        .post(
            "ops",
            ANN,
            &plain(
                "ops",
                ANN,
                "ops.1@t",
                "Mon, 02 Nov 2026 10:00:00 +0000",
                "ops note",
                "",
                "owners only",
            ),
        )
        .await;
    let pubpost = s
        .post(
            "pub",
            ANN,
            &plain(
                "pub",
                ANN,
                "pub.1@t",
                "Mon, 02 Nov 2026 10:00:00 +0000",
                "pub note",
                "",
                "for all",
            ),
        )
        .await;
    let month = s.month_of(dev_root);
    let dev = format!("{}/archive/{LIST}", s.base);
    let opsa = format!("{}/archive/ops", s.base);

    // anonymous: public yes; members' and owners' archives: 401 with a login form
    assert_eq!(
        page(&format!("{}/archive/pub/{month}", s.base), None)
            .await
            .0,
        200
    );
    for url in [
        dev.clone(),
        format!("{dev}/{month}"),
        format!("{dev}/msg/{dev_root}"),
        format!("{dev}/msg/{dev_root}/part/0"),
        format!("{dev}/search?q=zebra"),
        format!("{opsa}/msg/{ops}"),
    ] {
        let (status, p, h) = page(&url, None).await;
        assert_eq!(status, 401, "{url}: {p}");
        assert!(p.contains("action=\"/login\""), "{url}: {p}");
        assert!(h.contains_key("content-security-policy"));
        assert!(!p.contains("zebra") && !p.contains("owners only"), "{p}");
    }
    assert_eq!(page(&format!("{}/archive/nope", s.base), None).await.0, 404);
    // the feed: public archives only
    assert_eq!(page(&format!("{dev}/atom.xml"), None).await.0, 403);
    assert_eq!(page(&format!("{opsa}/atom.xml"), None).await.0, 403);
    assert_eq!(
        page(&format!("{}/archive/nope/atom.xml", s.base), None)
            .await
            .0,
        404
    );

    // the lists page links the archives each may read
    let (_, p) = get(&format!("{}/", s.base)).await;
    assert!(
        p.contains("id=\"archive-pub\"") && !p.contains("id=\"archive-dev\""),
        "{p}"
    );

    let stranger = login(&s.sink, &s.base, STRANGER).await;
    let ann = login(&s.sink, &s.base, ANN).await;
    let owner = login(&s.sink, &s.base, OWNER).await;
    let admin = login(&s.sink, &s.base, ADMIN).await;
    let (_, p) = get_with(&format!("{}/", s.base), &ann).await;
    assert!(
        p.contains("id=\"archive-dev\"") && !p.contains("id=\"archive-ops\""),
        "{p}"
    );
    let (_, p) = get_with(&format!("{}/", s.base), &owner).await;
    assert!(p.contains("id=\"archive-ops\""), "{p}");

    // members: a stranger 403, a member, an owner and an admin 200
    let (status, p, _) = page(&format!("{dev}/{month}"), Some(&stranger)).await;
    assert_eq!(status, 403, "{p}");
    assert!(p.contains("for its members"), "{p}");
    for who in [&ann, &owner, &admin] {
        let (status, p, _) = page(&format!("{dev}/msg/{dev_root}"), Some(who)).await;
        assert_eq!(status, 200, "{p}");
        assert!(p.contains("The zebra release is on Friday."));
    }
    let (status, p, _) = page(&format!("{dev}/search?q=zebra"), Some(&ann)).await;
    assert_eq!(status, 200);
    assert!(p.contains(&format!("id=\"hit-{dev_root}\"")), "{p}");
    // owners: a member 403, an owner and an admin 200
    assert_eq!(page(&format!("{opsa}/msg/{ops}"), Some(&ann)).await.0, 403);
    assert_eq!(
        page(&format!("{opsa}/msg/{ops}"), Some(&owner)).await.0,
        200
    );
    assert_eq!(page(&opsa, Some(&admin)).await.0, 200);

    // the API: public without a token; others need a token for the list or an admin one
    let api_dev = format!("{}/api/lists/{LIST}/archive", s.base);
    let api_pub = format!("{}/api/lists/pub/archive", s.base);
    let (status, v) = api("GET", &api_pub, None, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["posts"][0]["id"], pubpost);
    let (status, v) = api("GET", &api_dev, None, None).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"], "unauthorized");
    assert_eq!(api("GET", &api_dev, Some("listd_bogus"), None).await.0, 401);
    let pub_token = s.token("p", "list:pub");
    let dev_token = s.token("d", "list:dev");
    let admin_token = s.token("a", "admin");
    let (status, v) = api("GET", &api_dev, Some(&pub_token), None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (status, v) = api(
        "GET",
        &format!("{api_dev}?month={month}&limit=2"),
        Some(&dev_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let first: Vec<i64> = v["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0], dev_root, "by date, oldest first");
    let after = v["next_after"].as_i64().expect("a next page");
    let (_, v) = api(
        "GET",
        &format!("{api_dev}?month={month}&limit=500&after={after}"),
        Some(&dev_token),
        None,
    )
    .await;
    let rest: Vec<i64> = v["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(rest.len(), 3, "{v}");
    assert!(!rest.contains(&first[0]) && !rest.contains(&first[1]));
    assert_eq!(v["next_after"], Value::Null);
    // newest first without a month
    let (_, v) = api(
        "GET",
        &format!("{api_dev}?limit=1"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(
        v["posts"][0]["subject"].as_str().unwrap(),
        "the logo",
        "{v}"
    );
    for bad in [
        "limit=0",
        "limit=501",
        "after=x",
        "month=2026-13",
        "page=2",
        "after=99999999",
    ] {
        let (status, v) = api("GET", &format!("{api_dev}?{bad}"), Some(&dev_token), None).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"], "bad_request");
    }
    assert_eq!(
        api(
            "GET",
            &format!("{}/api/lists/ops/archive", s.base),
            Some(&dev_token),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api(
            "GET",
            &format!("{}/api/lists/ops/archive", s.base),
            Some(&admin_token),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api(
            "GET",
            &format!("{}/api/lists/nope/archive", s.base),
            Some(&admin_token),
            None
        )
        .await
        .0,
        404
    );

    // API search and one post
    let (status, v) = api(
        "GET",
        &format!("{api_dev}/search?q=zebra"),
        Some(&dev_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["hits"][0]["id"], dev_root);
    assert_eq!(v["index_complete"], true, "{v}");
    assert!(v["hits"][0]["snippet"].as_str().unwrap().contains("zebra"));
    let (_, v) = api(
        "GET",
        &format!("{api_dev}/search?q=giraffe"),
        Some(&dev_token),
        None,
    )
    .await;
    assert_eq!(v["hits"], serde_json::json!([]));
    assert_eq!(
        api(
            "GET",
            &format!("{api_dev}/search?q=ab"),
            Some(&dev_token),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api("GET", &format!("{api_dev}/search?q=zebra"), None, None)
            .await
            .0,
        401
    );
    let (status, v) = api(
        "GET",
        &format!("{api_dev}/{dev_root}"),
        Some(&dev_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["text"].as_str().unwrap().contains("zebra"));
    assert_eq!(v["post"]["message_id"], "root.dev@t");
    let reply = v["replies"][0]["id"].as_i64().unwrap();
    let (_, v) = api("GET", &format!("{api_dev}/{reply}"), Some(&dev_token), None).await;
    assert_eq!(v["parent"]["id"], dev_root, "{v}");
    assert_eq!(v["post"]["parent"], "root.dev@t");
    let logo = s
        .env
        .store()
        .query_row(
            "SELECT id FROM archive_index WHERE list = 'dev' AND message_id = 'att.dev@t'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    let (_, v) = api("GET", &format!("{api_dev}/{logo}"), Some(&dev_token), None).await;
    assert_eq!(v["attachments"][0]["name"], "logo.png", "{v}");
    assert_eq!(v["attachments"][0]["size"], ATTACHED.len());
    assert_eq!(
        api("GET", &format!("{api_dev}/{ops}"), Some(&admin_token), None)
            .await
            .0,
        404,
        "ops' post is not dev's"
    );
    assert_eq!(
        api("GET", &format!("{api_dev}/x"), Some(&dev_token), None)
            .await
            .0,
        404
    );
    assert_eq!(
        api(
            "GET",
            &format!("{api_dev}/{dev_root}"),
            Some(&pub_token),
            None
        )
        .await
        .0,
        403
    );

    // the OpenAPI document describes the archive endpoints
    let (_, doc) = api("GET", &format!("{}/api/openapi.json", s.base), None, None).await;
    for p in [
        "/api/lists/{list}/archive",
        "/api/lists/{list}/archive/search",
        "/api/lists/{list}/archive/{id}",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p}");
    }
    assert_eq!(
        doc["components"]["schemas"]["ArchivedPost"]["properties"]["id"]["format"],
        "int64"
    );
    assert!(
        doc["paths"]["/api/lists/{list}/held"].is_object(),
        "the old paths stay"
    );
    s.d.shutdown().await;
}

/// A search index behind by more than one request indexes (1,000 posts):
/// the first search says it is still catching up and misses the newest
/// posts; the next one covers them. The archive comes from `listd archive
/// import`, its search index then emptied (an archive from before the
/// index existed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_over_a_long_backlog_says_the_index_is_catching_up() {
    let s = archive_site().await;
    let t0 = 1_790_000_000;
    let mut mbox = Vec::new();
    for i in 0..1200 {
        let word = if i == 1199 { "okapi" } else { "filler" };
        let m = format!(
            "From: {ANN}\r\nSubject: old post {i}\r\nMessage-ID: <old.{i}@t>\r\n\r\nAn old {word} post.\r\n"
        );
        let t = t0 + i * 60;
        mbox.extend(listd::archive::mbox_entry(
            &listd::archive::from_line(ANN, t),
            m.as_bytes(),
        ));
    }
    let file = s.env.path().join("old.mbox");
    std::fs::write(&file, &mbox).unwrap();
    let (code, out, err) = run_cli(
        &s.env,
        &["archive", "import", "pub", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 1200 messages"), "{out}");
    let conn = s.env.store();
    conn.execute("DELETE FROM archive_text WHERE list = 'pub'", [])
        .unwrap();
    conn.execute("DELETE FROM archive_text_done WHERE list = 'pub'", [])
        .unwrap();

    let search = format!("{}/archive/pub/search?q=okapi", s.base);
    let (status, p, _) = page(&search, None).await;
    assert_eq!(status, 200, "{p}");
    assert!(
        p.contains("id=\"indexing\"") && p.contains("id=\"no-hits\""),
        "{p}"
    );
    assert_eq!(s.env.count("archive_text", "list = 'pub'"), 1000);
    let (status, p, _) = page(&search, None).await;
    assert_eq!(status, 200);
    assert!(
        !p.contains("id=\"indexing\"") && p.contains("id=\"hit-"),
        "{p}"
    );
    let (_, v) = api(
        "GET",
        &format!("{}/api/lists/pub/archive/search?q=okapi", s.base),
        None,
        None,
    )
    .await;
    assert_eq!(v["index_complete"], true, "{v}");
    assert_eq!(v["hits"][0]["subject"], "old post 1199", "{v}");
    s.d.shutdown().await;
}
