//! What must hold after every restart: nothing acknowledged lost, nothing counted twice, every
//! view equal to a batch recompute of its query, the sink topic equal to its view.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::{Client, SimpleQueryMessage};

use super::workload::{Ddl, Workload, describe, fixed_views};

/// Rows of a mismatch printed in a failure.
const DIFF_ROWS_SHOWN: usize = 5;

/// Checks the restarted server against what `workload` knows, settles what was in flight at
/// the kill, and says what was checked.
pub async fn verify(client: &Client, workload: &mut Workload) -> Result<String, String> {
    if !workload.errors.is_empty() {
        return Err(format!(
            "the server refused a statement before the kill: {}",
            workload.errors.join("; ")
        ));
    }
    // Views catch up with everything the restarted server holds; nothing writes from here on.
    query(client, "FLUSH").await?;
    let records = check_events(client, workload).await?;
    check_accounts(client, workload).await?;
    settle_ddl(client, workload).await?;
    let mut views = fixed_views();
    views.extend(workload.views.values().cloned());
    for view in &views {
        let stored = query(client, &format!("SELECT * FROM {}", view.name)).await?;
        let recomputed = query(client, &view.recompute).await?;
        compare(&view.name, stored, recomputed)?;
    }
    check_sink(client).await?;
    Ok(format!(
        "{records} records, {} table rows, {} views equal to their recompute",
        workload.accounts.len(),
        views.len()
    ))
}

/// Every acknowledged record once, a record in flight at most once, nothing else.
async fn check_events(client: &Client, workload: &mut Workload) -> Result<usize, String> {
    let mut seen: BTreeMap<i64, u32> = BTreeMap::new();
    for row in query(client, "SELECT id FROM events").await? {
        let id: i64 = row
            .parse()
            .map_err(|_| format!("events: id {row:?} is not a number"))?;
        *seen.entry(id).or_default() += 1;
    }
    let maybe: BTreeSet<i64> = std::mem::take(&mut workload.maybe_events)
        .into_iter()
        .collect();
    for (&id, &n) in &seen {
        let known = workload.events.contains(&id) || maybe.contains(&id);
        if !known {
            return Err(format!("events: record {id} was never written"));
        }
        if n > 1 {
            return Err(format!("events: record {id} is there {n} times"));
        }
    }
    if let Some(lost) = workload.events.iter().find(|id| !seen.contains_key(id)) {
        return Err(format!(
            "events: acknowledged record {lost} is lost ({} of {} acknowledged records there)",
            workload
                .events
                .iter()
                .filter(|id| seen.contains_key(id))
                .count(),
            workload.events.len()
        ));
    }
    workload
        .events
        .extend(maybe.into_iter().filter(|id| seen.contains_key(id)));
    Ok(seen.len())
}

/// The table as acknowledged, with the write in flight applied or not.
async fn check_accounts(client: &Client, workload: &mut Workload) -> Result<(), String> {
    let mut found = BTreeMap::new();
    for row in query(client, "SELECT id, balance FROM accounts").await? {
        let (id, balance) = row
            .split_once('|')
            .and_then(|(i, b)| Some((i.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
            .ok_or_else(|| format!("accounts: bad row {row:?}"))?;
        if found.insert(id, balance).is_some() {
            return Err(format!("accounts: key {id} is there twice"));
        }
    }
    let mut with_maybe = workload.accounts.clone();
    if let Some(op) = workload.maybe_account.take() {
        op.apply(&mut with_maybe);
    }
    if found != workload.accounts && found != with_maybe {
        let differ = workload
            .accounts
            .iter()
            .filter(|(id, b)| found.get(id) != Some(b))
            .take(DIFF_ROWS_SHOWN)
            .collect::<Vec<_>>();
        return Err(format!(
            "accounts: {} rows where {} were acknowledged; differing (id, acknowledged balance): {differ:?}",
            found.len(),
            workload.accounts.len()
        ));
    }
    workload.accounts = found;
    Ok(())
}

/// The views made during the run exist, the CREATE or DROP in flight happened or not, and no
/// view failed.
async fn settle_ddl(client: &Client, workload: &mut Workload) -> Result<(), String> {
    let mut listed = BTreeMap::new();
    for row in query(client, "SELECT view, status, error FROM weir_views").await? {
        let mut parts = row.splitn(3, '|');
        let name = parts.next().unwrap_or_default().to_string();
        let status = parts.next().unwrap_or_default().to_string();
        if status != "running" {
            return Err(format!(
                "view {name} is {status}: {}",
                parts.next().unwrap_or("")
            ));
        }
        listed.insert(name, status);
    }
    match workload.maybe_ddl.take() {
        Some(Ddl::Create(view)) if listed.contains_key(&view.name) => {
            workload.views.insert(view.name.clone(), view);
        }
        Some(Ddl::Drop(name)) if !listed.contains_key(&name) => {
            workload.views.remove(&name);
        }
        _ => {}
    }
    let expected: BTreeSet<String> = fixed_views()
        .into_iter()
        .map(|v| v.name)
        .chain(workload.views.keys().cloned())
        .collect();
    let listed: BTreeSet<String> = listed.into_keys().collect();
    if listed != expected {
        return Err(format!(
            "views: the server has {listed:?}, the harness expects {expected:?}"
        ));
    }
    Ok(())
}

/// The sink's topic, each row counted +1 for an insert and -1 for a delete, is the view.
async fn check_sink(client: &Client) -> Result<(), String> {
    let mut folded: BTreeMap<String, i64> = BTreeMap::new();
    for row in query(
        client,
        "SELECT k, n, total, lo, hi, op FROM per_key_out_rows",
    )
    .await?
    {
        let (values, op) = row
            .rsplit_once('|')
            .ok_or_else(|| format!("sink: bad row {row:?}"))?;
        let weight = match op {
            "insert" => 1,
            "delete" => -1,
            other => return Err(format!("sink: op {other:?} in {row:?}")),
        };
        let count = folded.entry(values.to_string()).or_default();
        *count += weight;
        if *count < 0 || *count > 1 {
            return Err(format!("sink: row {values} is held {count} times"));
        }
    }
    let folded: Vec<String> = folded
        .into_iter()
        .filter(|(_, n)| *n == 1)
        .map(|(row, _)| row)
        .collect();
    let view = query(client, "SELECT k, n, total, lo, hi FROM per_key").await?;
    compare("per_key_sink (the sink's topic)", folded, view)
}

/// Both as multisets of rows.
fn compare(what: &str, mut stored: Vec<String>, mut recomputed: Vec<String>) -> Result<(), String> {
    stored.sort();
    recomputed.sort();
    if stored == recomputed {
        return Ok(());
    }
    let (mut extra, mut missing) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < stored.len() || j < recomputed.len() {
        match (stored.get(i), recomputed.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => (extra.push(a.clone()), i += 1).1,
            (Some(_), Some(b)) => (missing.push(b.clone()), j += 1).1,
            (Some(a), None) => (extra.push(a.clone()), i += 1).1,
            (None, Some(b)) => (missing.push(b.clone()), j += 1).1,
            (None, None) => break,
        }
    }
    extra.truncate(DIFF_ROWS_SHOWN);
    missing.truncate(DIFF_ROWS_SHOWN);
    Err(format!(
        "{what}: {} rows, the recompute {}; only in the view: {extra:?}; only in the recompute: {missing:?}",
        stored.len(),
        recomputed.len()
    ))
}

/// The rows of `sql`, each as its text values joined by `|` (NULL as `NULL`).
async fn query(client: &Client, sql: &str) -> Result<Vec<String>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{sql}: {}", describe(&e)))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}
