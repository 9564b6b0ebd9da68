//! The SQL both backends share. SQLite accepts PostgreSQL's `$N` placeholders (sqlx binds them
//! by number on both), and both speak `ON CONFLICT`, `RETURNING` and row-value comparison, so one
//! text serves both. `shared_sql!()` expands these functions inside each backend module, over that
//! module's `Conn` (the backend's connection type); the backends differ only in how they open a
//! group transaction (SQLite `BEGIN IMMEDIATE`, PostgreSQL row/advisory locks) and in tuning.

macro_rules! shared_sql {
    () => {
        use $crate::store::assemble::assemble;
        use $crate::store::{
            Auth, Cursor, DEFAULT_PAGE_LIMIT, DeviceFilter, DeviceRecord, IncidentDetail,
            IncidentFilter, ItemResult, KillScope, KillSwitch, ListOrder, MAX_PAGE_LIMIT, StoreError,
            TimelineEvent, WriteItem, WriteKind, WriteOk, denial, diag_advisory, kill_advisory,
        };
        use netmedic_proto::{
            ActionId, ActionOutcome, ActionRecord, Category, CheckId,
            Heartbeat, IncidentEvent, IncidentPage, IncidentStatus, IncidentView, ReportAck,
            ReportBatch, Severity, Timestamp,
        };
        use std::collections::{BTreeMap, BTreeSet};

        type Result<T, E = StoreError> = std::result::Result<T, E>;

        /// Rows per multi-row statement (well under SQLite's 32766 and PostgreSQL's 65535
        /// bound parameters).
        const CHUNK_ROWS: usize = 500;

        /// Applies a group of writes inside the caller's transaction; one result per item.
        /// Statements are per group, not per request: all heartbeats of the group in one
        /// UPDATE, all new events in multi-row INSERTs, all touched incidents re-read in one
        /// query and upserted in one statement — round trips, not rows, are what cost.
        async fn apply_group(conn: &mut Conn, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
            let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
            let mut now_ms = 0;
            for item in items {
                now_ms = now_ms.max(item.received_at.unix_millis());
            }
            heartbeats(conn, items, &mut results).await?;
            reports(conn, items, &mut results, now_ms).await?;
            results
                .into_iter()
                .map(|r| r.ok_or_else(|| StoreError::Corrupt("write item without result".into())))
                .collect()
        }

        async fn heartbeats(
            conn: &mut Conn,
            items: &[WriteItem],
            results: &mut [Option<ItemResult>],
        ) -> Result<()> {
            let hbs: Vec<(usize, &Heartbeat, &Auth, i64)> = items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| match &it.kind {
                    WriteKind::Heartbeat(hb) => Some((i, hb, &it.auth, it.received_at.unix_millis())),
                    WriteKind::Report(_) => None,
                })
                .collect();
            if hbs.is_empty() {
                return Ok(());
            }
            // Trusted heartbeats (local tools) create their device first.
            for (_, hb, auth, _) in &hbs {
                if **auth == Auth::Trusted {
                    let _ = authenticate(conn, auth, &hb.agent_id).await?;
                }
            }
            // One UPDATE checks every token and records every heartbeat of the group.
            let mut recorded: BTreeMap<(String, Option<String>), Option<String>> = BTreeMap::new();
            // For trusted items, which carry no token.
            let mut by_id: BTreeMap<String, Option<String>> = BTreeMap::new();
            let encoded = hbs
                .iter()
                .map(|(_, hb, _, _)| serde_json::to_string(hb))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| StoreError::Corrupt(format!("cannot encode heartbeat: {e}")))?;
            let rows_in: Vec<_> = hbs.iter().zip(encoded).collect();
            for chunk in rows_in.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "UPDATE devices SET
                        first_seen_at = COALESCE(devices.first_seen_at, v.seen),
                        last_seen_at = v.seen,
                        agent_version = v.agent_version,
                        firmware_version = v.firmware_version,
                        last_heartbeat = v.heartbeat
                     FROM (SELECT column1 AS agent_id, column2 AS token, column3 AS seen,
                                  column4 AS agent_version, column5 AS firmware_version,
                                  column6 AS heartbeat
                           FROM (",
                );
                qb.push_values(chunk, |mut b, ((_, hb, auth, seen), json)| {
                    let json = json.clone();
                    let token = match auth {
                        Auth::TokenSha256(h) => Some(h.clone()),
                        Auth::Trusted => None,
                    };
                    b.push_bind(hb.agent_id.clone())
                        .push_bind(token)
                        .push_bind(*seen)
                        .push_bind(hb.agent_version.clone())
                        .push_bind(hb.firmware_version.clone())
                        .push_bind(json);
                });
                qb.push(
                    ") AS x) AS v
                     WHERE devices.agent_id = v.agent_id
                       AND (v.token IS NULL
                            OR (devices.token_sha256 = v.token AND devices.revoked_at IS NULL))
                     RETURNING devices.agent_id, devices.token_sha256, devices.region",
                );
                let rows: Vec<(String, Option<String>, Option<String>)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                for (id, token, region) in rows {
                    by_id.insert(id.clone(), region.clone());
                    recorded.insert((id, token), region);
                }
            }
            let switches = load_killswitches(conn).await?;
            let ok: Vec<&str> = recorded.keys().map(|(id, _)| id.as_str()).collect();
            // Regions from the subscribers table, only when a region switch is in force.
            let mut sub_region: BTreeMap<String, Option<String>> = BTreeMap::new();
            if switches.iter().any(|k| k.scope == "region") {
                for chunk in ok.chunks(CHUNK_ROWS) {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "SELECT agent_id, region FROM subscribers WHERE agent_id IN (",
                    );
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(id.to_string());
                    }
                    qb.push(")");
                    let rows: Vec<(String, Option<String>)> =
                        qb.build_query_as().fetch_all(&mut *conn).await?;
                    sub_region.extend(rows);
                }
            }
            // Pending diagnostics of the group's devices, marked delivered in the same commit.
            let mut diags: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let delivered_at = hbs.iter().map(|h| h.3).max().unwrap_or(0);
            for chunk in ok.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "UPDATE diagnostics_requests SET delivered_at = ",
                );
                qb.push_bind(delivered_at);
                qb.push(" WHERE delivered_at IS NULL AND agent_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.to_string());
                }
                qb.push(") RETURNING agent_id, request_id, checks");
                let rows: Vec<(String, String, String)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                for (agent, id, checks) in rows {
                    diags.entry(agent).or_default().push((id, checks));
                }
            }
            // Upstream-outage advisories of the devices behind an access node in a network
            // event (see correlate.rs).
            let mut outages = outage_advisories(conn, &ok, delivered_at).await?;
            for (i, hb, auth, _) in hbs {
                let found = match auth {
                    Auth::TokenSha256(h) => recorded.get(&(hb.agent_id.clone(), Some(h.clone()))),
                    Auth::Trusted => by_id.get(&hb.agent_id),
                };
                let Some(region) = found else {
                    // Refused: find out why (rare path).
                    results[i] = Some(match authenticate(conn, auth, &hb.agent_id).await? {
                        Err(d) => Err(d),
                        Ok(()) => {
                            return Err(StoreError::Corrupt(format!(
                                "heartbeat of {} matched no device row",
                                hb.agent_id
                            )));
                        }
                    });
                    continue;
                };
                let region = sub_region
                    .get(&hb.agent_id)
                    .cloned()
                    .flatten()
                    .or_else(|| region.clone());
                let mut advisories = Vec::new();
                if let Some(a) = outages.remove(&hb.agent_id) {
                    advisories.push(a);
                }
                if let Some(a) = kill_advisory(&switches, &hb.agent_id, region.as_deref()) {
                    advisories.push(a);
                }
                // Delivered once: to the first heartbeat of this device in the group.
                if let Some(mut pending) = diags.remove(&hb.agent_id) {
                    pending.sort();
                    for (id, checks) in pending {
                        advisories.push(diag_advisory(id, &checks)?);
                    }
                }
                results[i] = Some(Ok(WriteOk::Heartbeat(advisories)));
            }
            Ok(())
        }

        async fn reports(
            conn: &mut Conn,
            items: &[WriteItem],
            results: &mut [Option<ItemResult>],
            now_ms: i64,
        ) -> Result<()> {
            // Authenticate each batch; collect the events of the accepted ones (first
            // occurrence of an event id in the group; later ones are duplicates).
            let mut rows: Vec<(usize, &str, &IncidentEvent)> = Vec::new();
            let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
            let mut batches: Vec<(usize, &ReportBatch)> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let WriteKind::Report(batch) = &item.kind else {
                    continue;
                };
                if let Err(d) = authenticate(conn, &item.auth, &batch.agent_id).await? {
                    results[i] = Some(Err(d));
                    continue;
                }
                batches.push((i, batch));
                for e in &batch.events {
                    if seen.insert(e.event_id.as_str()) {
                        rows.push((i, batch.agent_id.as_str(), e));
                    }
                }
            }
            if batches.is_empty() {
                return Ok(());
            }
            let received: BTreeMap<usize, i64> = batches
                .iter()
                .map(|(i, _)| (*i, items[*i].received_at.unix_millis()))
                .collect();
            let mut accepted: std::collections::HashSet<String> = std::collections::HashSet::new();
            let payloads = rows
                .iter()
                .map(|(_, _, e)| serde_json::to_string(e))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| StoreError::Corrupt(format!("cannot encode event: {e}")))?;
            let rows_in: Vec<_> = rows.iter().zip(payloads).collect();
            for chunk in rows_in.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO events (event_id, agent_id, incident_id, seq, kind, payload, received_at) ",
                );
                let mut bad = None;
                qb.push_values(chunk, |mut b, ((i, agent, e), payload)| {
                    let seq = match to_i64(e.seq, "seq") {
                        Ok(s) => s,
                        Err(err) => {
                            bad = Some(err);
                            0
                        }
                    };
                    b.push_bind(e.event_id.clone())
                        .push_bind(agent.to_string())
                        .push_bind(e.incident_id.clone())
                        .push_bind(seq)
                        .push_bind(e.kind.as_str())
                        .push_bind(payload.clone())
                        .push_bind(received.get(i).copied().unwrap_or(now_ms));
                });
                if let Some(err) = bad {
                    return Err(err);
                }
                qb.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let ids: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                accepted.extend(ids.into_iter().map(|(id,)| id));
            }
            // Action trails of the new events.
            let actions: Vec<(&str, &IncidentEvent, usize, &ActionRecord)> = rows
                .iter()
                .filter(|(_, _, e)| accepted.contains(&e.event_id))
                .flat_map(|(_, agent, e)| {
                    e.actions.iter().enumerate().map(move |(k, a)| (*agent, *e, k, a))
                })
                .collect();
            for chunk in actions.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO incident_actions
                        (event_id, agent_id, incident_id, seq, idx, action, outcome, at, detail) ",
                );
                qb.push_values(chunk, |mut b, (agent, e, k, a)| {
                    b.push_bind(e.event_id.clone())
                        .push_bind(agent.to_string())
                        .push_bind(e.incident_id.clone())
                        .push_bind(i64::try_from(e.seq).unwrap_or(i64::MAX))
                        .push_bind(i64::try_from(*k).unwrap_or(i64::MAX))
                        .push_bind(a.action.as_str())
                        .push_bind(a.outcome.as_str())
                        .push_bind(a.at.unix_millis())
                        .push_bind(a.detail.clone());
                });
                qb.build().execute(&mut *conn).await?;
            }
            let mut touched: BTreeSet<(&str, &str)> = BTreeSet::new();
            for (_, agent, e) in &rows {
                if accepted.contains(&e.event_id) {
                    touched.insert((agent, e.incident_id.as_str()));
                }
            }
            let touched: Vec<(&str, &str)> = touched.into_iter().collect();
            // An incident without a row has no stored events besides this group's (every
            // accepted event is assembled in the transaction that stores it): assemble it from
            // memory. Known incidents are re-read whole.
            let mut existing: BTreeSet<(String, String)> = BTreeSet::new();
            for chunk in touched.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT agent_id, incident_id FROM incidents WHERE (agent_id, incident_id) IN (",
                );
                qb.push_values(chunk, |mut b, (agent, incident)| {
                    b.push_bind(agent.to_string()).push_bind(incident.to_string());
                });
                qb.push(")");
                let found: Vec<(String, String)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                existing.extend(found);
            }
            let mut fresh: BTreeMap<(&str, &str), Vec<IncidentEvent>> = BTreeMap::new();
            for (_, agent, e) in &rows {
                let key = (*agent, e.incident_id.as_str());
                if accepted.contains(&e.event_id)
                    && !existing.contains(&(agent.to_string(), e.incident_id.clone()))
                {
                    fresh.entry(key).or_default().push((*e).clone());
                }
            }
            let known: Vec<(&str, &str)> = touched
                .iter()
                .filter(|(a, i)| existing.contains(&(a.to_string(), i.to_string())))
                .copied()
                .collect();
            for chunk in known.chunks(CHUNK_ROWS) {
                rebuild_incidents(conn, chunk, now_ms).await?;
            }
            let fresh: Vec<((&str, &str), Vec<IncidentEvent>)> = fresh.into_iter().collect();
            for chunk in fresh.chunks(CHUNK_ROWS) {
                let mut assembled = Vec::with_capacity(chunk.len());
                for ((agent, incident), events) in chunk {
                    if let Some(a) = assemble(events) {
                        assembled.push(((*agent).to_owned(), (*incident).to_owned(), a));
                    }
                }
                upsert_incidents(conn, assembled, now_ms).await?;
            }
            for (i, batch) in batches {
                let mut ack = ReportAck {
                    accepted: 0,
                    duplicates: 0,
                    acked_event_ids: batch.events.iter().map(|e| e.event_id.clone()).collect(),
                };
                let mut mine: std::collections::HashSet<&str> = std::collections::HashSet::new();
                for (j, _, e) in &rows {
                    if *j == i && accepted.contains(&e.event_id) {
                        mine.insert(e.event_id.as_str());
                    }
                }
                for e in &batch.events {
                    // An id twice in one batch counts once as accepted, then as a duplicate.
                    if mine.remove(e.event_id.as_str()) {
                        ack.accepted += 1;
                    } else {
                        ack.duplicates += 1;
                    }
                }
                results[i] = Some(Ok(WriteOk::Report(ack)));
            }
            Ok(())
        }

        /// Recomputes incident rows from all of their stored events (arrival order is
        /// irrelevant). The caller holds the incidents' locks (SQLite: the write lock;
        /// PostgreSQL: their advisory locks), so every committed event is visible here.
        async fn rebuild_incidents(
            conn: &mut Conn,
            keys: &[(&str, &str)],
            now_ms: i64,
        ) -> Result<()> {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "SELECT agent_id, incident_id, payload FROM events WHERE (agent_id, incident_id) IN (",
            );
            qb.push_values(keys, |mut b, (agent, incident)| {
                b.push_bind(agent.to_string()).push_bind(incident.to_string());
            });
            qb.push(")");
            let rows: Vec<(String, String, String)> =
                qb.build_query_as().fetch_all(&mut *conn).await?;
            let mut by_incident: BTreeMap<(String, String), Vec<IncidentEvent>> = BTreeMap::new();
            for (agent, incident, payload) in rows {
                let e: IncidentEvent = serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(format!("stored event payload: {e}")))?;
                by_incident.entry((agent, incident)).or_default().push(e);
            }
            let mut assembled = Vec::with_capacity(by_incident.len());
            for ((agent, incident), events) in by_incident {
                if let Some(a) = assemble(&events) {
                    assembled.push((agent, incident, a));
                }
            }
            upsert_incidents(conn, assembled, now_ms).await
        }

        /// Writes assembled incidents in one multi-row upsert.
        async fn upsert_incidents(
            conn: &mut Conn,
            incidents: Vec<(String, String, $crate::store::assemble::Assembled)>,
            now_ms: i64,
        ) -> Result<()> {
            let mut assembled = Vec::with_capacity(incidents.len());
            for (agent, incident, a) in incidents {
                let evidence = serde_json::to_string(&a.evidence)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode evidence: {e}")))?;
                let last_seq = to_i64(a.last_seq, "seq")?;
                assembled.push((agent, incident, a, evidence, last_seq));
            }
            if assembled.is_empty() {
                return Ok(());
            }
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO incidents
                    (agent_id, incident_id, check_id, cause, category, severity, status, started_at,
                     resolved_at, auto_healed, summary, evidence, event_count, last_seq,
                     first_received_at, updated_at) ",
            );
            qb.push_values(&assembled, |mut b, (agent, incident, a, evidence, last_seq)| {
                b.push_bind(agent.clone())
                    .push_bind(incident.clone())
                    .push_bind(a.check.as_str())
                    .push_bind(a.cause.clone())
                    .push_bind(a.category.as_str())
                    .push_bind(a.severity.as_str())
                    .push_bind(status_str(a.status))
                    .push_bind(a.started_at.unix_millis())
                    .push_bind(a.resolved_at.map(Timestamp::unix_millis))
                    .push_bind(a.auto_healed)
                    .push_bind(a.summary.clone())
                    .push_bind(evidence.clone())
                    .push_bind(i64::from(a.event_count))
                    .push_bind(*last_seq)
                    .push_bind(now_ms)
                    .push_bind(now_ms);
            });
            qb.push(
                " ON CONFLICT (agent_id, incident_id) DO UPDATE SET
                    check_id = excluded.check_id,
                    cause = excluded.cause,
                    category = excluded.category,
                    severity = excluded.severity,
                    status = excluded.status,
                    started_at = excluded.started_at,
                    resolved_at = excluded.resolved_at,
                    auto_healed = excluded.auto_healed,
                    summary = excluded.summary,
                    evidence = excluded.evidence,
                    event_count = excluded.event_count,
                    last_seq = excluded.last_seq,
                    updated_at = excluded.updated_at",
            );
            qb.build().execute(&mut *conn).await?;
            Ok(())
        }

        /// Checks the token against `claimed`; `Trusted` creates the device row when missing.
        async fn authenticate(
            conn: &mut Conn,
            auth: &Auth,
            claimed: &str,
        ) -> Result<Result<(), $crate::store::Denied>> {
            match auth {
                Auth::Trusted => {
                    sqlx::query(
                        "INSERT INTO devices (agent_id) VALUES ($1) ON CONFLICT (agent_id) DO NOTHING",
                    )
                    .bind(claimed)
                    .execute(&mut *conn)
                    .await?;
                    Ok(Ok(()))
                }
                Auth::TokenSha256(hash) => {
                    let found: Option<(String, Option<i64>)> = sqlx::query_as(
                        "SELECT agent_id, revoked_at FROM devices WHERE token_sha256 = $1",
                    )
                    .bind(hash)
                    .fetch_optional(&mut *conn)
                    .await?;
                    match found {
                        Some((id, None)) if id == claimed => Ok(Ok(())),
                        other => Ok(Err(denial(other, claimed))),
                    }
                }
            }
        }

        const INCIDENT_COLUMNS: &str = "i.agent_id, i.incident_id, i.check_id, i.cause, \
            i.category, i.severity, i.status, i.started_at, i.resolved_at, i.auto_healed, \
            i.summary, i.evidence, i.event_count";

        async fn list_incidents_in(
            conn: &mut Conn,
            filter: &IncidentFilter,
            limit: u32,
            cursor: Option<&Cursor>,
        ) -> Result<IncidentPage> {
            let limit = match limit {
                0 => DEFAULT_PAGE_LIMIT,
                n => n.min(MAX_PAGE_LIMIT),
            };
            if cursor.is_some_and(|c| !c.fits(filter.order)) {
                return Err(StoreError::InvalidCursor);
            }
            let (cmp, dir) = if filter.order == ListOrder::Oldest {
                (">", "ASC")
            } else {
                ("<", "DESC")
            };
            // Only the predicates in force: a generic `($n IS NULL OR col = $n)` would keep the
            // planner from the indexes (agent, category, status; a customer's devices), and a
            // filtered page over a million incidents would scan them all.
            let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                "SELECT {INCIDENT_COLUMNS}
                 FROM incidents i
                 LEFT JOIN subscribers s ON s.agent_id = i.agent_id
                 LEFT JOIN devices d ON d.agent_id = i.agent_id
                 WHERE 1 = 1"
            ));
            if let Some(v) = filter.status {
                q.push(" AND i.status = ").push_bind(status_str(v));
            }
            if let Some(v) = filter.category {
                q.push(" AND i.category = ").push_bind(v.as_str());
            }
            if let Some(v) = filter.check {
                q.push(" AND i.check_id = ").push_bind(v.as_str());
            }
            if let Some(v) = filter.agent_id.as_deref() {
                q.push(" AND i.agent_id = ").push_bind(v.to_owned());
            }
            if let Some(v) = filter.customer_id.as_deref() {
                q.push(" AND i.agent_id IN (SELECT agent_id FROM subscribers WHERE customer_id = ")
                    .push_bind(v.to_owned())
                    .push(")");
            }
            if let Some(v) = filter.region.as_deref() {
                q.push(" AND COALESCE(s.region, d.region) = ").push_bind(v.to_owned());
            }
            if let Some(v) = filter.access_node.as_deref() {
                q.push(" AND s.access_node = ").push_bind(v.to_owned());
            }
            if let Some(v) = filter.cpe_model.as_deref() {
                q.push(" AND s.cpe_model = ").push_bind(v.to_owned());
            }
            if let Some(v) = filter.firmware.as_deref() {
                q.push(" AND COALESCE(s.firmware, d.firmware_version) = ")
                    .push_bind(v.to_owned());
            }
            if let Some(t) = filter.from {
                q.push(" AND i.started_at >= ").push_bind(t.unix_millis());
            }
            if let Some(t) = filter.to {
                q.push(" AND i.started_at < ").push_bind(t.unix_millis());
            }
            if let Some(c) = cursor {
                q.push(" AND (");
                if let Some(rank) = c.severity_rank {
                    q.push(SEVERITY_RANK_SQL).push(", ");
                    q.push(format!("i.started_at, i.agent_id, i.incident_id) {cmp} ("))
                        .push_bind(rank)
                        .push(", ");
                } else {
                    q.push(format!("i.started_at, i.agent_id, i.incident_id) {cmp} ("));
                }
                q.push_bind(c.started_at_ms)
                    .push(", ")
                    .push_bind(c.agent_id.clone())
                    .push(", ")
                    .push_bind(c.incident_id.clone())
                    .push(")");
            }
            q.push(" ORDER BY ");
            if filter.order == ListOrder::Severity {
                q.push(format!("{SEVERITY_RANK_SQL} {dir}, "));
            }
            q.push(format!(
                "i.started_at {dir}, i.agent_id {dir}, i.incident_id {dir} LIMIT "
            ))
            .push_bind(i64::from(limit) + 1);
            let rows: Vec<IncidentRow> = q.build_query_as().fetch_all(&mut *conn).await?;
            let more = rows.len() > limit as usize;
            let mut incidents = Vec::with_capacity(rows.len().min(limit as usize));
            for row in rows.into_iter().take(limit as usize) {
                let actions = load_actions(conn, &row.agent_id, &row.incident_id).await?;
                incidents.push(row.into_view(actions)?);
            }
            let next_cursor = if more {
                incidents
                    .last()
                    .map(|v| Cursor::after(v, filter.order).encode())
            } else {
                None
            };
            Ok(IncidentPage {
                incidents,
                next_cursor,
            })
        }

        async fn get_incident_in(
            conn: &mut Conn,
            agent_id: &str,
            incident_id: &str,
        ) -> Result<Option<IncidentDetail>> {
            let sql = format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.agent_id = $1 AND i.incident_id = $2"
            );
            let row: Option<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(agent_id)
                .bind(incident_id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let actions = load_actions(conn, agent_id, incident_id).await?;
            let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
                "SELECT event_id, seq, payload, received_at FROM events
                 WHERE agent_id = $1 AND incident_id = $2 ORDER BY seq, event_id",
            )
            .bind(agent_id)
            .bind(incident_id)
            .fetch_all(&mut *conn)
            .await?;
            let events = rows
                .into_iter()
                .map(|(event_id, seq, payload, received_at)| {
                    let e: IncidentEvent = serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("stored event payload: {e}")))?;
                    Ok(TimelineEvent {
                        event_id,
                        seq: u64::try_from(seq)
                            .map_err(|_| StoreError::Corrupt("negative seq".into()))?,
                        kind: e.kind,
                        at: e.at,
                        received_at: timestamp(received_at, "received_at")?,
                        action_count: u32::try_from(e.actions.len()).unwrap_or(u32::MAX),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(IncidentDetail {
                incident: row.into_view(actions)?,
                events,
            }))
        }

        async fn enrol_device_in(
            conn: &mut Conn,
            agent_id: &str,
            region: Option<&str>,
            token_sha256: &str,
            now: i64,
        ) -> Result<()> {
            let existing: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
                "SELECT token_sha256, revoked_at FROM devices WHERE agent_id = $1",
            )
            .bind(agent_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some((Some(_), None)) = existing {
                return Err(StoreError::Conflict(format!(
                    "device {agent_id:?} is already enrolled; revoke it first to issue a new token"
                )));
            }
            sqlx::query(
                "INSERT INTO devices (agent_id, token_sha256, enrolled_at, region)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (agent_id) DO UPDATE SET
                    token_sha256 = excluded.token_sha256,
                    enrolled_at = excluded.enrolled_at,
                    revoked_at = NULL,
                    region = COALESCE(excluded.region, devices.region)",
            )
            .bind(agent_id)
            .bind(token_sha256)
            .bind(now)
            .bind(region)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn revoke_device_in(conn: &mut Conn, agent_id: &str, now: i64) -> Result<bool> {
            let n = sqlx::query(
                "UPDATE devices SET revoked_at = $2
                 WHERE agent_id = $1 AND token_sha256 IS NOT NULL AND revoked_at IS NULL",
            )
            .bind(agent_id)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n > 0)
        }

        const DEVICE_COLUMNS: &str = "d.agent_id, COALESCE(s.region, d.region) AS region, \
            d.enrolled_at, d.revoked_at, d.first_seen_at, d.last_seen_at, d.agent_version, \
            d.firmware_version, d.last_heartbeat, s.customer_id, s.access_node";

        async fn list_devices_in(conn: &mut Conn, f: &DeviceFilter) -> Result<Vec<DeviceRecord>> {
            let limit = match f.limit {
                0 => DEFAULT_PAGE_LIMIT,
                n => n.min(MAX_PAGE_LIMIT),
            };
            let sql = format!(
                "SELECT {DEVICE_COLUMNS}
                 FROM devices d LEFT JOIN subscribers s ON s.agent_id = d.agent_id
                 WHERE ($1 IS NULL OR d.agent_id > $1)
                   AND ($2 IS NULL OR COALESCE(s.region, d.region) = $2)
                   AND ($3 IS NULL
                        OR ($3 = 'revoked' AND d.revoked_at IS NOT NULL)
                        OR ($3 = 'never_seen' AND d.revoked_at IS NULL AND d.last_seen_at IS NULL)
                        OR ($3 = 'offline' AND d.revoked_at IS NULL AND d.last_seen_at < $4)
                        OR ($3 = 'online' AND d.revoked_at IS NULL AND d.last_seen_at >= $4))
                 ORDER BY d.agent_id
                 LIMIT $5"
            );
            let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(f.after.as_deref())
                .bind(f.region.as_deref())
                .bind(f.state.map(|s| s.as_str()))
                .bind(f.offline_before_ms)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows.into_iter().map(DeviceRow::into_record).collect())
        }

        async fn get_device_in(conn: &mut Conn, agent_id: &str) -> Result<Option<DeviceRecord>> {
            let sql = format!(
                "SELECT {DEVICE_COLUMNS}
                 FROM devices d LEFT JOIN subscribers s ON s.agent_id = d.agent_id
                 WHERE d.agent_id = $1"
            );
            let row: Option<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(agent_id)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row.map(DeviceRow::into_record))
        }

        async fn set_killswitch_in(
            conn: &mut Conn,
            scope: &KillScope,
            reason: &str,
            now: i64,
        ) -> Result<()> {
            let (scope, target) = scope.parts();
            sqlx::query(
                "INSERT INTO killswitches (scope, target, reason, set_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (scope, target) DO UPDATE SET
                    reason = excluded.reason, set_at = excluded.set_at",
            )
            .bind(scope)
            .bind(target)
            .bind(reason)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn clear_killswitch_in(conn: &mut Conn, scope: &KillScope) -> Result<bool> {
            let (scope, target) = scope.parts();
            let n = sqlx::query("DELETE FROM killswitches WHERE scope = $1 AND target = $2")
                .bind(scope)
                .bind(target)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(n > 0)
        }

        async fn load_killswitches(conn: &mut Conn) -> Result<Vec<KillSwitch>> {
            let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                "SELECT scope, target, reason, set_at FROM killswitches ORDER BY scope, target",
            )
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|(scope, target, reason, set_at)| {
                    let scope = match KillScope::from_parts(&scope, String::new()) {
                        Some(s) => s.parts().0,
                        None => {
                            return Err(StoreError::Corrupt(format!("kill switch scope {scope:?}")));
                        }
                    };
                    Ok(KillSwitch {
                        scope,
                        target,
                        reason,
                        set_at: timestamp(set_at, "set_at")?,
                    })
                })
                .collect()
        }

        async fn request_diagnostics_in(
            conn: &mut Conn,
            agent_id: &str,
            checks: &[CheckId],
            request_id: &str,
            now: i64,
        ) -> Result<()> {
            let exists: Option<(String,)> = sqlx::query_as(
                "SELECT agent_id FROM devices
                 WHERE agent_id = $1 AND token_sha256 IS NOT NULL AND revoked_at IS NULL",
            )
            .bind(agent_id)
            .fetch_optional(&mut *conn)
            .await?;
            if exists.is_none() {
                return Err(StoreError::NoSuchDevice(agent_id.to_owned()));
            }
            let checks: Vec<&str> = checks.iter().map(|c| c.as_str()).collect();
            sqlx::query(
                "INSERT INTO diagnostics_requests (request_id, agent_id, checks, requested_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(request_id)
            .bind(agent_id)
            .bind(checks.join(","))
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn load_actions(
            conn: &mut Conn,
            agent_id: &str,
            incident_id: &str,
        ) -> Result<Vec<ActionRecord>> {
            let rows: Vec<ActionRow> = sqlx::query_as(
                "SELECT action, outcome, at, detail FROM incident_actions
                 WHERE agent_id = $1 AND incident_id = $2
                 ORDER BY seq, idx, event_id",
            )
            .bind(agent_id)
            .bind(incident_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(ActionRecord {
                        action: parse_enum(&r.action, ActionId::parse, "action")?,
                        outcome: parse_enum(&r.outcome, ActionOutcome::parse, "outcome")?,
                        at: timestamp(r.at, "at")?,
                        detail: r.detail,
                    })
                })
                .collect()
        }

        #[derive(Debug, sqlx::FromRow)]
        struct IncidentRow {
            agent_id: String,
            incident_id: String,
            check_id: String,
            cause: String,
            category: String,
            severity: String,
            status: String,
            started_at: i64,
            resolved_at: Option<i64>,
            auto_healed: Option<bool>,
            summary: String,
            evidence: String,
            event_count: i64,
        }

        impl IncidentRow {
            fn into_view(self, actions: Vec<ActionRecord>) -> Result<IncidentView> {
                let status = match self.status.as_str() {
                    "open" => IncidentStatus::Open,
                    "resolved" => IncidentStatus::Resolved,
                    other => {
                        return Err(StoreError::Corrupt(format!("incident status {other:?}")));
                    }
                };
                let evidence: BTreeMap<String, String> = serde_json::from_str(&self.evidence)
                    .map_err(|e| StoreError::Corrupt(format!("incident evidence: {e}")))?;
                Ok(IncidentView {
                    check: parse_enum(&self.check_id, CheckId::parse, "check")?,
                    category: parse_enum(&self.category, Category::parse, "category")?,
                    severity: parse_enum(&self.severity, Severity::parse, "severity")?,
                    status,
                    started_at: timestamp(self.started_at, "started_at")?,
                    resolved_at: self
                        .resolved_at
                        .map(|ms| timestamp(ms, "resolved_at"))
                        .transpose()?,
                    auto_healed: self.auto_healed,
                    evidence,
                    actions,
                    event_count: u32::try_from(self.event_count)
                        .map_err(|_| StoreError::Corrupt("event_count out of range".into()))?,
                    agent_id: self.agent_id,
                    incident_id: self.incident_id,
                    cause: self.cause,
                    summary: self.summary,
                })
            }
        }

        #[derive(Debug, sqlx::FromRow)]
        struct ActionRow {
            action: String,
            outcome: String,
            at: i64,
            detail: String,
        }

        #[derive(Debug, sqlx::FromRow)]
        struct DeviceRow {
            agent_id: String,
            region: Option<String>,
            enrolled_at: Option<i64>,
            revoked_at: Option<i64>,
            first_seen_at: Option<i64>,
            last_seen_at: Option<i64>,
            agent_version: Option<String>,
            firmware_version: Option<String>,
            last_heartbeat: Option<String>,
            customer_id: Option<String>,
            access_node: Option<String>,
        }

        impl DeviceRow {
            fn into_record(self) -> DeviceRecord {
                DeviceRecord {
                    agent_id: self.agent_id,
                    region: self.region,
                    enrolled_at: self.enrolled_at,
                    revoked_at: self.revoked_at,
                    first_seen_at: self.first_seen_at,
                    last_seen_at: self.last_seen_at,
                    agent_version: self.agent_version,
                    firmware_version: self.firmware_version,
                    last_heartbeat: self.last_heartbeat,
                    customer_id: self.customer_id,
                    access_node: self.access_node,
                }
            }
        }

        fn status_str(s: IncidentStatus) -> &'static str {
            match s {
                IncidentStatus::Open => "open",
                IncidentStatus::Resolved => "resolved",
            }
        }

        fn parse_enum<T>(s: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T> {
            parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {s:?}")))
        }

        fn timestamp(ms: i64, what: &str) -> Result<Timestamp> {
            Timestamp::from_unix_millis(ms)
                .ok_or_else(|| StoreError::Corrupt(format!("{what} {ms} out of range")))
        }

        fn to_i64(v: u64, what: &str) -> Result<i64> {
            i64::try_from(v)
                .map_err(|_| StoreError::OutOfRange(format!("{what} {v} exceeds 2^63-1")))
        }


    };
}

/// `impl Store` for a backend struct with a `pool` field and an inherent
/// `async fn write(&self, &[WriteItem]) -> Result<Vec<ItemResult>>`.
macro_rules! store_impl {
    ($ty:ty) => {
        impl $crate::store::Store for $ty {
            fn maintain(&self) -> $crate::store::BoxFuture<'_, Result<()>> {
                Box::pin(async move {
                    if let Some(sql) = MAINTAIN_SQL {
                        sqlx::query(sql).execute(&self.pool).await?;
                    }
                    Ok(())
                })
            }

            fn write_group<'a>(
                &'a self,
                items: &'a [WriteItem],
            ) -> $crate::store::BoxFuture<'a, Result<Vec<ItemResult>>> {
                Box::pin(self.write(items))
            }

            fn list_incidents<'a>(
                &'a self,
                filter: &'a IncidentFilter,
                limit: u32,
                cursor: Option<&'a Cursor>,
            ) -> $crate::store::BoxFuture<'a, Result<IncidentPage>> {
                Box::pin(async move {
                    // One read transaction: the page and its action trails from one snapshot.
                    let mut tx = self.pool.begin().await?;
                    let page = list_incidents_in(&mut tx, filter, limit, cursor).await?;
                    tx.commit().await?;
                    Ok(page)
                })
            }

            fn get_incident<'a>(
                &'a self,
                agent_id: &'a str,
                incident_id: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<Option<IncidentDetail>>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    let d = get_incident_in(&mut tx, agent_id, incident_id).await?;
                    tx.commit().await?;
                    Ok(d)
                })
            }

            fn enrol_device<'a>(
                &'a self,
                agent_id: &'a str,
                region: Option<&'a str>,
                token_sha256: &'a str,
                now: Timestamp,
            ) -> $crate::store::BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    let mut tx = self.begin_write().await?;
                    enrol_device_in(&mut tx, agent_id, region, token_sha256, now.unix_millis())
                        .await?;
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn enrol_devices<'a>(
                &'a self,
                devices: &'a [(String, String)],
                now: Timestamp,
            ) -> $crate::store::BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    let mut tx = self.begin_write().await?;
                    for (id, hash) in devices {
                        enrol_device_in(&mut tx, id, None, hash, now.unix_millis()).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn revoke_device<'a>(
                &'a self,
                agent_id: &'a str,
                now: Timestamp,
            ) -> $crate::store::BoxFuture<'a, Result<bool>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    revoke_device_in(&mut conn, agent_id, now.unix_millis()).await
                })
            }

            fn list_devices<'a>(
                &'a self,
                filter: &'a DeviceFilter,
            ) -> $crate::store::BoxFuture<'a, Result<Vec<DeviceRecord>>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    list_devices_in(&mut conn, filter).await
                })
            }

            fn get_device<'a>(
                &'a self,
                agent_id: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<Option<DeviceRecord>>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    get_device_in(&mut conn, agent_id).await
                })
            }

            fn set_killswitch<'a>(
                &'a self,
                scope: &'a KillScope,
                reason: &'a str,
                now: Timestamp,
            ) -> $crate::store::BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    set_killswitch_in(&mut conn, scope, reason, now.unix_millis()).await
                })
            }

            fn clear_killswitch<'a>(
                &'a self,
                scope: &'a KillScope,
            ) -> $crate::store::BoxFuture<'a, Result<bool>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    clear_killswitch_in(&mut conn, scope).await
                })
            }

            fn list_killswitches(&self) -> $crate::store::BoxFuture<'_, Result<Vec<KillSwitch>>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    load_killswitches(&mut conn).await
                })
            }

            fn request_diagnostics<'a>(
                &'a self,
                agent_id: &'a str,
                checks: &'a [CheckId],
                request_id: &'a str,
                now: Timestamp,
            ) -> $crate::store::BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await?;
                    request_diagnostics_in(
                        &mut conn,
                        agent_id,
                        checks,
                        request_id,
                        now.unix_millis(),
                    )
                    .await
                })
            }

            fn ping(&self) -> $crate::store::BoxFuture<'_, Result<()>> {
                Box::pin(async move {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                })
            }

            fn close(&self) -> $crate::store::BoxFuture<'_, ()> {
                Box::pin(self.pool.close())
            }

            $crate::store::cx::cx_methods!();
            $crate::store::diag::diag_methods!();
            $crate::store::noc::noc_methods!();
        }
    };
}

pub(crate) use {shared_sql, store_impl};
