//! The resolver's caches: one bounded map per record type, implementing
//! mail-auth's `ResolverCache`, so every SPF, DKIM and DMARC lookup (and the
//! MX/A/AAAA lookups of delivery) goes through them.
//!
//! Two modes. Live: entries expire at their TTL (capped), and a full cache
//! drops expired entries, then arbitrary ones, so memory stays bounded
//! whatever names a sender makes us look up. Authoritative (a static zone):
//! the zone's records never expire, nothing is inserted, and a name not in
//! the zone answers the negative value given (NXDOMAIN or an empty set), so
//! the resolver behind the cache is never asked. Trusts nothing in the
//! names; a poisoned lock is recovered, never a panic.

use mail_auth::ResolverCache;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One bounded cache of `K` to `V`.
pub struct Cache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
    max_entries: usize,
    max_ttl: Duration,
    /// `Some`: authoritative (static zone); the answer for a name not held.
    negative: Option<V>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A live cache of at most `max_entries`, each kept at most `max_ttl`.
    pub fn live(max_entries: usize, max_ttl: Duration) -> Cache<K, V> {
        Cache {
            map: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
            max_ttl,
            negative: None,
        }
    }

    /// An authoritative cache holding exactly `entries`; every other name
    /// answers `negative`.
    pub fn authoritative(entries: impl IntoIterator<Item = (K, V)>, negative: V) -> Cache<K, V> {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        let map: HashMap<K, (V, Instant)> =
            entries.into_iter().map(|(k, v)| (k, (v, far))).collect();
        Cache {
            max_entries: map.len().max(1),
            map: Mutex::new(map),
            max_ttl: Duration::MAX,
            negative: Some(negative),
        }
    }

    /// Entries held now (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Cache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.lock();
        if self.negative.is_some() {
            return Some(
                map.get(name)
                    .map(|(v, _)| v.clone())
                    .unwrap_or_else(|| self.negative.clone().expect("checked above")),
            );
        }
        match map.get(name) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.negative.is_some() {
            return None;
        }
        self.lock().remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        if self.negative.is_some() {
            return;
        }
        let now = Instant::now();
        let until = valid_until.min(now + self.max_ttl);
        if until <= now {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.max_entries && !map.contains_key(&key) {
            map.retain(|_, (_, t)| *t > now);
            // still full: drop an eighth, whichever the map yields first
            if map.len() >= self.max_entries {
                let drop = (self.max_entries / 8).max(1);
                let mut n = 0;
                map.retain(|_, _| {
                    n += 1;
                    n > drop
                });
            }
        }
        map.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_cache_stays_bounded_and_expires() {
        let c: Cache<Box<str>, u32> = Cache::live(16, Duration::from_secs(60));
        let later = Instant::now() + Duration::from_secs(3600);
        for i in 0..1000u32 {
            c.insert(format!("n{i}.").into(), i, later);
            assert!(c.len() <= 16);
        }
        assert_eq!(c.get("n999."), Some(999));
        c.insert("gone.".into(), 1, Instant::now());
        assert_eq!(c.get("gone."), None, "already expired: not kept");
        assert_eq!(c.get("never."), None);
    }

    #[test]
    fn an_authoritative_cache_answers_every_name() {
        let c: Cache<Box<str>, u32> = Cache::authoritative([("a.".into(), 1)], 0);
        assert_eq!(c.get("a."), Some(1));
        assert_eq!(c.get("b."), Some(0), "the negative answer");
        c.insert("b.".into(), 5, Instant::now() + Duration::from_secs(60));
        assert_eq!(c.get("b."), Some(0), "nothing is inserted");
    }
}
