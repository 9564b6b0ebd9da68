//! The write path of the SQL backends: a group of report batches and heartbeats applied in the
//! caller's transaction. `write_sql!()` expands these functions inside `sql_store!`
//! (`shared.rs`), over the backend's `Conn` and `Db`.

macro_rules! write_sql {
    () => {
        use netmedic_proto::EventKind;
        use $crate::store::assemble::{
            Assembled, MAX_ACTIONS_PER_INCIDENT, MAX_EVENTS_PER_INCIDENT, merge,
        };
        use $crate::store::shared::{Seen, SeenBuffer};

        /// Applies a group of writes inside the caller's transaction; one result per item.
        /// Items whose result is already in `results` (answered on the read path, see
        /// [`heartbeats_read`]) are skipped.
        /// Statements are per group, not per request: all heartbeats of the group in one
        /// UPDATE, all new events in multi-row INSERTs, all touched incident rows read in one
        /// query, merged with their new events and upserted in one statement — round trips,
        /// not rows, are what cost.
        async fn apply_group(
            conn: &mut Conn,
            items: &[WriteItem],
            mut results: Vec<Option<ItemResult>>,
        ) -> Result<Vec<ItemResult>> {
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

        /// A heartbeat of a group with its item's index, token hash (None: trusted) and
        /// arrival time.
        type Hb<'a> = (usize, &'a Heartbeat, Option<&'a str>, i64);

        /// The heartbeats among `items` that have no result yet.
        fn pending_heartbeats<'a>(
            items: &'a [WriteItem],
            results: &[Option<ItemResult>],
        ) -> Vec<Hb<'a>> {
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| results[*i].is_none())
                .filter_map(|(i, it)| match (&it.kind, &it.auth) {
                    (WriteKind::Heartbeat(hb), Auth::TokenSha256(h)) => {
                        Some((i, hb, Some(h.as_str()), it.received_at.unix_millis()))
                    }
                    (WriteKind::Heartbeat(hb), Auth::Trusted) => {
                        Some((i, hb, None, it.received_at.unix_millis()))
                    }
                    (WriteKind::Report(_), _) => None,
                })
                .collect()
        }

        /// Heartbeats answered without a write transaction (the common case): the tokens are
        /// checked with one read, the advisories taken from the cache's advice snapshot when it
        /// holds nothing for the group's devices (else read), and the last-seen update goes to
        /// `seen`, which is written in batches (see [`SeenBuffer`]). No fsync, no write lock:
        /// a heartbeat records nothing an agent would lose. Returns `false`, answering nothing,
        /// when a device of the group has diagnostics pending — those are marked delivered in
        /// the same commit as the reply, so the group takes the write path.
        async fn heartbeats_read(
            conn: &mut Conn,
            items: &[WriteItem],
            results: &mut [Option<ItemResult>],
            seen: &SeenBuffer,
            cache: &$crate::store::hbcache::HbCache,
        ) -> Result<bool> {
            // Read before the token read: a revocation after it drops what this read found.
            let generation = cache.generation();
            let verified = std::time::Instant::now();
            let hbs: Vec<Hb<'_>> = pending_heartbeats(items, results)
                .into_iter()
                .filter(|h| h.2.is_some())
                .collect();
            if hbs.is_empty() {
                return Ok(true);
            }
            // The cache's advice snapshot answers the group when it is fresh and leaves no
            // device of the group to the database (diagnostics pending, an active network
            // event, a region switch): no diagnostics, kill switch, experiment or outage reads.
            let mut snapshot = None;
            for h in &hbs {
                snapshot = cache.advice_for(&h.1.agent_id, h.3);
                if snapshot.is_none() {
                    break;
                }
            }
            let ids: BTreeSet<&str> = hbs.iter().map(|h| h.1.agent_id.as_str()).collect();
            let ids: Vec<&str> = ids.into_iter().collect();
            let unchecked: &[&str] = if snapshot.is_some() { &[] } else { &ids };
            for chunk in unchecked.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT agent_id FROM diagnostics_requests
                     WHERE delivered_at IS NULL AND agent_id IN (",
                );
                let mut sep = qb.separated(", ");
                for id in $crate::store::hbcache::padded(chunk) {
                    sep.push_bind(*id);
                }
                qb.push(") LIMIT 1");
                let any: Option<(String,)> = qb.build_query_as().fetch_optional(&mut *conn).await?;
                if any.is_some() {
                    return Ok(false);
                }
            }
            // token hash -> (device, region) of the unrevoked devices among the group's tokens.
            let tokens: BTreeSet<&str> = hbs.iter().filter_map(|h| h.2).collect();
            let tokens: Vec<&str> = tokens.into_iter().collect();
            let mut valid: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
            for chunk in tokens.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT token_sha256, agent_id, region FROM devices
                     WHERE revoked_at IS NULL AND token_sha256 IN (",
                );
                let mut sep = qb.separated(", ");
                for t in $crate::store::hbcache::padded(chunk) {
                    sep.push_bind(*t);
                }
                qb.push(")");
                let rows: Vec<(String, String, Option<String>)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                valid.extend(rows.into_iter().map(|(t, id, region)| (t, (id, region))));
            }
            cache.insert_tokens(
                generation,
                verified,
                valid.iter().map(|(t, (id, _))| (t.as_str(), id.as_str())),
            );
            let mut ok = Vec::with_capacity(hbs.len());
            let mut fresh = Vec::with_capacity(hbs.len());
            for (i, hb, token, at) in hbs {
                let token = token.unwrap_or_default();
                match valid.get(token) {
                    Some((id, region)) if *id == hb.agent_id => {
                        fresh.push((
                            hb.agent_id.clone(),
                            Seen {
                                token_sha256: token.to_owned(),
                                seen_ms: at,
                                heartbeat: hb.clone(),
                            },
                        ));
                        ok.push((i, hb, region.clone()));
                    }
                    // Refused: find out why (rare path, a read too).
                    _ => {
                        let auth = Auth::TokenSha256(token.to_owned());
                        results[i] = Some(match authenticate(conn, &auth, &hb.agent_id).await? {
                            Err(d) => Err(d),
                            // Revoked or re-enrolled since the read above: refuse as unknown.
                            Ok(()) => Err($crate::store::Denied::UnknownToken),
                        });
                    }
                }
            }
            if let Some(advice) = snapshot {
                for (i, hb, _) in &ok {
                    results[*i] = Some(Ok(WriteOk::Heartbeat(advice.reply(&hb.agent_id))));
                }
            } else {
                let now_ms = items
                    .iter()
                    .map(|it| it.received_at.unix_millis())
                    .max()
                    .unwrap_or(0);
                advise(conn, &ok, BTreeMap::new(), now_ms, results).await?;
            }
            seen.record(fresh);
            Ok(true)
        }

        /// Writes buffered last-seen updates (one multi-row UPDATE per chunk), each only if it
        /// is newer than what the row holds (several processes may flush the same device).
        /// The heartbeats are encoded here, once per device and flush.
        async fn write_seen(conn: &mut Conn, rows: &[(String, Seen)]) -> Result<()> {
            let encoded = rows
                .iter()
                .map(|(_, s)| serde_json::to_string(&s.heartbeat))
                .collect::<std::result::Result<Vec<String>, _>>()
                .map_err(|e| StoreError::Corrupt(format!("cannot encode heartbeat: {e}")))?;
            let rows: Vec<_> = rows.iter().zip(encoded).collect();
            for chunk in rows.chunks(CHUNK_ROWS) {
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
                qb.push_values(chunk, |mut b, ((id, s), json)| {
                    b.push_bind(id.clone())
                        .push_bind(s.token_sha256.clone())
                        .push_bind(s.seen_ms)
                        .push_bind(s.heartbeat.agent_version.clone())
                        .push_bind(s.heartbeat.firmware_version.clone())
                        .push_bind(json.clone());
                });
                qb.push(
                    ") AS x) AS v
                     WHERE devices.agent_id = v.agent_id AND devices.token_sha256 = v.token
                       AND (devices.last_seen_at IS NULL OR devices.last_seen_at < v.seen)",
                );
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        async fn heartbeats(
            conn: &mut Conn,
            items: &[WriteItem],
            results: &mut [Option<ItemResult>],
        ) -> Result<()> {
            let hbs = pending_heartbeats(items, results);
            if hbs.is_empty() {
                return Ok(());
            }
            // Trusted heartbeats (local tools) create their device first.
            for (_, hb, token, _) in &hbs {
                if token.is_none() {
                    let _ = authenticate(conn, &Auth::Trusted, &hb.agent_id).await?;
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
                qb.push_values(chunk, |mut b, ((_, hb, token, seen), json)| {
                    b.push_bind(hb.agent_id.clone())
                        .push_bind(token.map(str::to_owned))
                        .push_bind(*seen)
                        .push_bind(hb.agent_version.clone())
                        .push_bind(hb.firmware_version.clone())
                        .push_bind(json.clone());
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
            let ok_ids: BTreeSet<&str> = recorded.keys().map(|(id, _)| id.as_str()).collect();
            let ok_ids: Vec<&str> = ok_ids.into_iter().collect();
            // Pending diagnostics of the group's devices, marked delivered in the same commit.
            let mut diags: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let delivered_at = hbs.iter().map(|h| h.3).max().unwrap_or(0);
            for chunk in ok_ids.chunks(CHUNK_ROWS) {
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
            let mut ok = Vec::with_capacity(hbs.len());
            for (i, hb, token, _) in hbs {
                let found = match token {
                    Some(h) => recorded.get(&(hb.agent_id.clone(), Some(h.to_owned()))),
                    None => by_id.get(&hb.agent_id),
                };
                let Some(region) = found else {
                    // Refused: find out why (rare path).
                    let auth = match token {
                        Some(h) => Auth::TokenSha256(h.to_owned()),
                        None => Auth::Trusted,
                    };
                    results[i] = Some(match authenticate(conn, &auth, &hb.agent_id).await? {
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
                ok.push((i, hb, region.clone()));
            }
            advise(conn, &ok, diags, delivered_at, results).await
        }

        /// The replies of accepted heartbeats `ok` (item index, heartbeat, the device row's
        /// region): upstream-outage advisories, kill switches in force, and the diagnostics
        /// in `diags` (delivered once: to the first heartbeat of the device in the group).
        async fn advise(
            conn: &mut Conn,
            ok: &[(usize, &Heartbeat, Option<String>)],
            mut diags: BTreeMap<String, Vec<(String, String)>>,
            now_ms: i64,
            results: &mut [Option<ItemResult>],
        ) -> Result<()> {
            if ok.is_empty() {
                return Ok(());
            }
            let ids: BTreeSet<&str> = ok.iter().map(|h| h.1.agent_id.as_str()).collect();
            let ids: Vec<&str> = ids.into_iter().collect();
            let switches = load_killswitches(conn).await?;
            // Active holdout experiments, the same for every device (each computes its arm).
            let experiments: Vec<netmedic_proto::Experiment> = load_experiments(conn, true)
                .await?
                .into_iter()
                .map(|r| r.experiment)
                .collect();
            // Regions from the subscribers table, only when a region switch is in force.
            let mut sub_region: BTreeMap<String, Option<String>> = BTreeMap::new();
            if switches.iter().any(|k| k.scope == "region") {
                for chunk in ids.chunks(CHUNK_ROWS) {
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
            // Upstream-outage advisories of the devices behind an access node in a network
            // event (see correlate.rs).
            let mut outages = outage_advisories(conn, &ids, now_ms).await?;
            for (i, hb, region) in ok {
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
                if let Some(mut pending) = diags.remove(&hb.agent_id) {
                    pending.sort();
                    for (id, checks) in pending {
                        advisories.push(diag_advisory(id, &checks)?);
                    }
                }
                results[*i] = Some(Ok(WriteOk::Heartbeat(HeartbeatOk {
                    advisories,
                    experiments: experiments.clone(),
                })));
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
            let mut payloads: Vec<&str> = Vec::new();
            let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
            let mut batches: Vec<(usize, &ReportBatch)> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let WriteKind::Report(report) = &item.kind else {
                    continue;
                };
                let batch = &report.batch;
                if let Err(d) = authenticate(conn, &item.auth, &batch.agent_id).await? {
                    results[i] = Some(Err(d));
                    continue;
                }
                batches.push((i, batch));
                for (k, e) in batch.events.iter().enumerate() {
                    if seen.insert(e.event_id.as_str()) {
                        rows.push((i, batch.agent_id.as_str(), e));
                        payloads.push(report.payload(k));
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
            let mut event_rows = Vec::with_capacity(rows.len());
            for ((i, agent, e), payload) in rows.iter().zip(payloads.iter().copied()) {
                event_rows.push($crate::store::dialect::EventRow {
                    event_id: e.event_id.as_str(),
                    agent_id: agent,
                    incident_id: e.incident_id.as_str(),
                    seq: to_i64(e.seq, "seq")?,
                    kind: e.kind.as_str(),
                    payload,
                    received_at: received.get(i).copied().unwrap_or(now_ms),
                });
            }
            let inserted =
                <D as $crate::store::dialect::Dialect>::insert_events(&mut *conn, &event_rows)
                    .await?;
            drop(event_rows);
            drop(payloads);
            let mut accepted: std::collections::HashSet<&str> = rows
                .iter()
                .zip(&inserted)
                .filter(|(_, new)| **new)
                .map(|((_, _, e), _)| e.event_id.as_str())
                .collect();
            // The new events per incident, in seq order, and what is stored of each incident.
            let mut fresh: BTreeMap<(&str, &str), Vec<&IncidentEvent>> = BTreeMap::new();
            for (_, agent, e) in &rows {
                if accepted.contains(e.event_id.as_str()) {
                    fresh.entry((*agent, e.incident_id.as_str())).or_default().push(*e);
                }
            }
            for events in fresh.values_mut() {
                events.sort_by(|a, b| (a.seq, &a.event_id).cmp(&(b.seq, &b.event_id)));
            }
            let touched: Vec<(&str, &str)> = fresh.keys().copied().collect();
            // Keyed by the borrowed keys of `fresh`: no key copies per lookup.
            let mut prev: BTreeMap<(&str, &str), Assembled> = BTreeMap::new();
            for chunk in touched.chunks(CHUNK_ROWS) {
                for ((agent, incident), a) in load_assembled(conn, chunk).await? {
                    // `touched` is sorted (the keys of a BTreeMap).
                    let found = touched
                        .binary_search_by(|k| (k.0, k.1).cmp(&(agent.as_str(), incident.as_str())));
                    if let Ok(at) = found {
                        prev.insert(touched[at], a);
                    }
                }
            }
            // Bound each incident (see MAX_EVENTS_PER_INCIDENT): the excess is folded — acked,
            // counted as a duplicate, and taken out of the events table again.
            let mut folded: BTreeSet<String> = BTreeSet::new();
            for (key, events) in fresh.iter_mut() {
                let before = prev.get(key);
                let mut stored = before.map_or(0, |a| a.event_count);
                let mut resolved = before.is_some_and(|a| a.status == IncidentStatus::Resolved);
                events.retain(|e| {
                    let is_resolved = e.kind == EventKind::Resolved;
                    let keep = stored < MAX_EVENTS_PER_INCIDENT || (is_resolved && !resolved);
                    if keep {
                        stored = stored.saturating_add(1);
                        resolved |= is_resolved;
                    } else {
                        folded.insert(e.event_id.clone());
                    }
                    keep
                });
            }
            let folded_ids: Vec<&String> = folded.iter().collect();
            for chunk in folded_ids.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new("DELETE FROM events WHERE event_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind((*id).clone());
                }
                qb.push(")");
                qb.build().execute(&mut *conn).await?;
            }
            if !folded.is_empty() {
                log::warn!(
                    "{} event(s) past the limit of {MAX_EVENTS_PER_INCIDENT} per incident folded",
                    folded.len()
                );
            }
            for id in &folded {
                accepted.remove(id.as_str());
            }
            // Action trails of the stored new events, bounded per incident.
            let with_actions: Vec<(&str, &str)> = fresh
                .iter()
                .filter(|(k, ev)| {
                    prev.contains_key(*k)
                        && ev.iter().any(|e| !e.actions.is_empty())
                })
                .map(|(k, _)| *k)
                .collect();
            let mut action_count: BTreeMap<(String, String), i64> = BTreeMap::new();
            for chunk in with_actions.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT agent_id, incident_id, COUNT(*) FROM incident_actions
                     WHERE (agent_id, incident_id) IN (",
                );
                <D as $crate::store::dialect::Dialect>::push_key_pairs(&mut qb, chunk);
                qb.push(") GROUP BY agent_id, incident_id");
                let found: Vec<(String, String, i64)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                action_count.extend(found.into_iter().map(|(a, i, n)| ((a, i), n)));
            }
            let mut actions: Vec<(&str, &IncidentEvent, usize, &ActionRecord)> = Vec::new();
            for ((agent, incident), events) in &fresh {
                let mut n = action_count
                    .get(&((*agent).to_owned(), (*incident).to_owned()))
                    .copied()
                    .unwrap_or(0);
                for e in events {
                    for (k, a) in e.actions.iter().enumerate() {
                        if n < i64::from(MAX_ACTIONS_PER_INCIDENT) {
                            actions.push((*agent, *e, k, a));
                            n += 1;
                        }
                    }
                }
            }
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
            // Incident rows: new events after the stored ones are merged into the stored row
            // (no re-read); an incident that got an older event is re-read whole (bounded).
            // Grouped by what changed (where the backend gains by it): a row whose indexed
            // values stay is written without naming them (see `IncidentSet`), so its index
            // entries are not rewritten.
            let narrow = <D as $crate::store::dialect::Dialect>::NARROW_INCIDENT_UPDATES;
            let mut assembled: [Vec<(&str, &str, Assembled)>; 3] = Default::default();
            let mut reread: Vec<(&str, &str)> = Vec::new();
            for ((agent, incident), events) in &fresh {
                if events.is_empty() {
                    continue;
                }
                let before = prev.get(&(*agent, *incident));
                let next = match before {
                    None => assemble(events),
                    Some(p) => merge(p, events),
                };
                match next {
                    Some(a) => {
                        let set = if narrow {
                            $crate::store::dialect::IncidentSet::for_update(before, &a)
                        } else {
                            $crate::store::dialect::IncidentSet::All
                        };
                        if let Some(group) = assembled.get_mut(set.index()) {
                            group.push((*agent, *incident, a));
                        }
                    }
                    None => reread.push((*agent, *incident)),
                }
            }
            let sets = $crate::store::dialect::IncidentSet::EVERY;
            for (set, group) in sets.into_iter().zip(assembled) {
                upsert_incidents(conn, group, now_ms, set).await?;
            }
            for chunk in reread.chunks(CHUNK_ROWS) {
                rebuild_incidents(conn, chunk, now_ms).await?;
            }
            // Accepted events per item: `rows` holds the first occurrence of each id in the
            // group, so an id twice in one batch counts once as accepted, then as a duplicate.
            let mut mine: BTreeMap<usize, u32> = BTreeMap::new();
            for (j, _, e) in &rows {
                if accepted.contains(e.event_id.as_str()) {
                    *mine.entry(*j).or_default() += 1;
                }
            }
            for (i, batch) in batches {
                let accepted = mine.get(&i).copied().unwrap_or(0);
                let total = u32::try_from(batch.events.len()).unwrap_or(u32::MAX);
                results[i] = Some(Ok(WriteOk::Report(ReportAck {
                    accepted,
                    duplicates: total.saturating_sub(accepted),
                    acked_event_ids: batch.events.iter().map(|e| e.event_id.clone()).collect(),
                })));
            }
            Ok(())
        }

        /// Recomputes incident rows from all of their stored events (arrival order is
        /// irrelevant). The caller holds the incidents' locks (SQLite: the write lock;
        /// PostgreSQL: their devices' advisory locks), so every committed event is visible here.
        async fn rebuild_incidents(
            conn: &mut Conn,
            keys: &[(&str, &str)],
            now_ms: i64,
        ) -> Result<()> {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "SELECT agent_id, incident_id, payload FROM events WHERE (agent_id, incident_id) IN (",
            );
            <D as $crate::store::dialect::Dialect>::push_key_pairs(&mut qb, keys);
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
            for ((agent, incident), events) in &by_incident {
                if let Some(a) = assemble(events) {
                    assembled.push((agent.as_str(), incident.as_str(), a));
                }
            }
            let all = $crate::store::dialect::IncidentSet::All;
            upsert_incidents(conn, assembled, now_ms, all).await
        }

        /// The stored incident rows of `keys`, as [`Assembled`] values for [`merge`].
        async fn load_assembled(
            conn: &mut Conn,
            keys: &[(&str, &str)],
        ) -> Result<Vec<((String, String), Assembled)>> {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "SELECT agent_id, incident_id, check_id, cause, category, severity, status,
                        started_at, resolved_at, auto_healed, summary, evidence, event_count,
                        last_seq, experiment_id, experiment_arm
                 FROM incidents WHERE (agent_id, incident_id) IN (",
            );
            <D as $crate::store::dialect::Dialect>::push_key_pairs(&mut qb, keys);
            qb.push(")");
            type Row = (
                String,
                String,
                String,
                String,
                String,
                String,
                String,
                i64,
                Option<i64>,
                Option<bool>,
                String,
                String,
                i64,
                i64,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Row> = qb.build_query_as().fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let status = match r.6.as_str() {
                    "open" => IncidentStatus::Open,
                    "resolved" => IncidentStatus::Resolved,
                    other => {
                        return Err(StoreError::Corrupt(format!("incident status {other:?}")));
                    }
                };
                let a = Assembled {
                    check: parse_enum(&r.2, CheckId::parse, "check")?,
                    cause: r.3,
                    category: parse_enum(&r.4, Category::parse, "category")?,
                    severity: parse_enum(&r.5, Severity::parse, "severity")?,
                    status,
                    started_at: timestamp(r.7, "started_at")?,
                    resolved_at: r.8.map(|ms| timestamp(ms, "resolved_at")).transpose()?,
                    auto_healed: r.9,
                    summary: r.10,
                    evidence: serde_json::from_str(&r.11)
                        .map_err(|e| StoreError::Corrupt(format!("incident evidence: {e}")))?,
                    event_count: u32::try_from(r.12)
                        .map_err(|_| StoreError::Corrupt("event_count out of range".into()))?,
                    last_seq: u64::try_from(r.13)
                        .map_err(|_| StoreError::Corrupt("last_seq out of range".into()))?,
                    experiment: experiment_arm(r.14, r.15)?,
                };
                out.push(((r.0, r.1), a));
            }
            Ok(out)
        }

        /// Writes assembled incidents (see [`Dialect::upsert_incidents`]).
        async fn upsert_incidents(
            conn: &mut Conn,
            incidents: Vec<(&str, &str, Assembled)>,
            now_ms: i64,
            set: $crate::store::dialect::IncidentSet,
        ) -> Result<()> {
            if incidents.is_empty() {
                return Ok(());
            }
            let mut assembled = Vec::with_capacity(incidents.len());
            for (agent, incident, a) in incidents {
                let evidence = serde_json::to_string(&a.evidence)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode evidence: {e}")))?;
                let last_seq = to_i64(a.last_seq, "seq")?;
                assembled.push((agent, incident, a, evidence, last_seq));
            }
            let rows: Vec<$crate::store::dialect::IncidentUpsert<'_>> = assembled
                .iter()
                .map(|(agent, incident, a, evidence, last_seq)| {
                    $crate::store::dialect::IncidentUpsert {
                        agent_id: agent,
                        incident_id: incident,
                        check_id: a.check.as_str(),
                        cause: &a.cause,
                        category: a.category.as_str(),
                        severity: a.severity.as_str(),
                        status: status_str(a.status),
                        started_at: a.started_at.unix_millis(),
                        resolved_at: a.resolved_at.map(Timestamp::unix_millis),
                        auto_healed: a.auto_healed,
                        summary: &a.summary,
                        evidence,
                        event_count: i64::from(a.event_count),
                        last_seq: *last_seq,
                        now_ms,
                        experiment_id: a.experiment.as_ref().map(|x| x.experiment_id.as_str()),
                        experiment_arm: a.experiment.as_ref().map(|x| x.arm.as_str()),
                    }
                })
                .collect();
            <D as $crate::store::dialect::Dialect>::upsert_incidents(&mut *conn, &rows, set).await
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
    };
}

pub(crate) use write_sql;
