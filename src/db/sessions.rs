//! The open Postgres sessions and what each is doing, for the `weir_sessions` system table
//! (Postgres's `pg_stat_activity`). A session registers when its log-in completes and is
//! removed when its connection ends (the [`SessionEntry`] lives in the connection's session
//! extensions); each statement marks it active with its text, then idle again. That is two
//! short mutex sections per statement, off the data path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The longest statement text a session row keeps, in characters (Postgres keeps 1 KB,
/// `track_activity_query_size`).
pub const SESSION_QUERY_CHARS_MAX: usize = 1024;

/// Every open session, by registration order.
#[derive(Default)]
pub struct SessionList {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<SessionInfo>>>,
}

/// One session: who, from where, since when, and what it is doing.
pub struct SessionInfo {
    pub pid: i32,
    pub user: String,
    pub client_addr: String,
    pub application_name: String,
    pub connected_at: SystemTime,
    activity: Mutex<Activity>,
}

/// What a session is doing now (or did last, when idle).
#[derive(Clone)]
pub struct Activity {
    /// `active` while a statement runs, `idle` between statements.
    pub state: &'static str,
    /// The statement running, or the last one; empty before the first.
    pub query: String,
    /// When that statement started.
    pub query_start: Option<SystemTime>,
}

/// A session's registration; dropping it (when the connection ends) removes the session.
pub struct SessionEntry {
    list: Arc<SessionList>,
    id: u64,
    pub info: Arc<SessionInfo>,
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.list
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl SessionList {
    /// Registers a session that has just logged in.
    pub fn register(
        self: &Arc<Self>,
        pid: i32,
        user: &str,
        client_addr: String,
        application_name: String,
    ) -> SessionEntry {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(SessionInfo {
            pid,
            user: user.to_string(),
            client_addr,
            application_name,
            connected_at: SystemTime::now(),
            activity: Mutex::new(Activity {
                state: "idle",
                query: String::new(),
                query_start: None,
            }),
        });
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, info.clone());
        SessionEntry {
            list: self.clone(),
            id,
            info,
        }
    }

    /// The open sessions and what each is doing, oldest first.
    pub fn snapshot(&self) -> Vec<(Arc<SessionInfo>, Activity)> {
        let open: Vec<Arc<SessionInfo>> = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        open.into_iter()
            .map(|s| {
                let activity = s.activity().clone();
                (s, activity)
            })
            .collect()
    }
}

impl SessionInfo {
    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A statement starts running; the session is idle again when the returned guard drops.
    pub fn statement_started(&self, sql: &str) -> ActiveStatement<'_> {
        let query = match sql.char_indices().nth(SESSION_QUERY_CHARS_MAX) {
            Some((cut, _)) => &sql[..cut],
            None => sql,
        };
        let mut activity = self.activity();
        activity.state = "active";
        activity.query.clear();
        activity.query.push_str(query);
        activity.query_start = Some(SystemTime::now());
        ActiveStatement(self)
    }
}

/// A running statement of a session; dropping it marks the session idle (the statement's text
/// stays, as in Postgres).
pub struct ActiveStatement<'a>(&'a SessionInfo);

impl Drop for ActiveStatement<'_> {
    fn drop(&mut self) {
        self.0.activity().state = "idle";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_come_and_go_and_show_their_statement() {
        let list = Arc::new(SessionList::default());
        let a = list.register(7, "weir", "127.0.0.1:5000".into(), "psql".into());
        let b = list.register(8, "ann", "127.0.0.1:5001".into(), String::new());
        let running = a
            .info
            .statement_started(&"x".repeat(SESSION_QUERY_CHARS_MAX + 10));
        let now = list.snapshot();
        assert_eq!(now.len(), 2);
        assert_eq!((now[0].0.pid, now[0].1.state), (7, "active"));
        assert_eq!(now[0].1.query.len(), SESSION_QUERY_CHARS_MAX);
        assert_eq!((now[1].0.user.as_str(), now[1].1.state), ("ann", "idle"));
        drop(running);
        assert_eq!(list.snapshot()[0].1.state, "idle");
        drop(b);
        let now = list.snapshot();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].0.pid, 7);
    }
}
