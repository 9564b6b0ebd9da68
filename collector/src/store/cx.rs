//! The SQL of customer-experience imports, the report's queries and mass-outage correlation,
//! shared by every backend: `cx_sql!()` expands the functions over the backend's `Conn`/`Db`
//! inside `sql_store!` (`shared.rs`), `cx_methods!(cx | incidents)` the matching methods of
//! [`super::CxStore`] and [`super::IncidentStore`].

macro_rules! cx_sql {
    () => {
        use $crate::analytics::{Aggregator, Dims, NetworkEventView, Outcome, Report, ReportParams};
        use $crate::correlate::{ActiveEvent, Candidate, OutageParams, PassOutcome};
        use $crate::store::records::{IMPORT_BATCH_ROWS, ImportError, ImportReport, Record, RowSource};
        use $crate::store::NetworkEventFilter;
        use futures::TryStreamExt;

        /// Upserts validated rows (all of one kind) by their id.
        async fn insert_records(conn: &mut Conn, rows: &[Record]) -> Result<()> {
            for chunk in rows.chunks(CHUNK_ROWS) {
                let Some(first) = chunk.first() else {
                    continue;
                };
                let mut qb = match first {
                    Record::Subscriber(_) => sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO subscribers (agent_id, customer_id, region, access_node, plan, cpe_model, firmware) ",
                    ),
                    Record::Survey(_) => sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO surveys (survey_id, customer_id, answered_at, nps, csat, channel, verbatim) ",
                    ),
                    Record::Contact(_) => sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO contacts (contact_id, customer_id, created_at, channel, reason, resolved_at) ",
                    ),
                };
                qb.push_values(chunk, |mut b, r| match r {
                    Record::Subscriber(s) => {
                        b.push_bind(s.agent_id.clone())
                            .push_bind(s.customer_id.clone())
                            .push_bind(s.region.clone())
                            .push_bind(s.access_node.clone())
                            .push_bind(s.plan.clone())
                            .push_bind(s.cpe_model.clone())
                            .push_bind(s.firmware.clone());
                    }
                    Record::Survey(s) => {
                        b.push_bind(s.survey_id.clone())
                            .push_bind(s.customer_id.clone())
                            .push_bind(s.answered_at_ms)
                            .push_bind(s.nps)
                            .push_bind(s.csat)
                            .push_bind(s.channel.clone())
                            .push_bind(s.verbatim.clone());
                    }
                    Record::Contact(c) => {
                        b.push_bind(c.contact_id.clone())
                            .push_bind(c.customer_id.clone())
                            .push_bind(c.created_at_ms)
                            .push_bind(c.channel.clone())
                            .push_bind(c.reason.clone())
                            .push_bind(c.resolved_at_ms);
                    }
                });
                qb.push(match first {
                    Record::Subscriber(_) => {
                        " ON CONFLICT (agent_id) DO UPDATE SET customer_id = excluded.customer_id,
                          region = excluded.region, access_node = excluded.access_node,
                          plan = excluded.plan, cpe_model = excluded.cpe_model,
                          firmware = excluded.firmware"
                    }
                    Record::Survey(_) => {
                        " ON CONFLICT (survey_id) DO UPDATE SET customer_id = excluded.customer_id,
                          answered_at = excluded.answered_at, nps = excluded.nps,
                          csat = excluded.csat, channel = excluded.channel,
                          verbatim = excluded.verbatim"
                    }
                    Record::Contact(_) => {
                        " ON CONFLICT (contact_id) DO UPDATE SET customer_id = excluded.customer_id,
                          created_at = excluded.created_at, channel = excluded.channel,
                          reason = excluded.reason, resolved_at = excluded.resolved_at"
                    }
                });
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// A file may repeat an id: the last row wins (as re-importing it would), and one
        /// multi-row upsert must not name a key twice (PostgreSQL refuses that).
        fn dedup_batch(rows: &mut Vec<Record>) {
            let key = |r: &Record| -> String {
                match r {
                    Record::Subscriber(s) => s.agent_id.clone(),
                    Record::Survey(s) => s.survey_id.clone(),
                    Record::Contact(c) => c.contact_id.clone(),
                }
            };
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<Record> = Vec::with_capacity(rows.len());
            for r in rows.drain(..).rev() {
                if seen.insert(key(&r)) {
                    out.push(r);
                }
            }
            out.reverse();
            *rows = out;
        }

        #[derive(Debug, sqlx::FromRow)]
        struct ReportIncidentRow {
            agent_id: String,
            incident_id: String,
            category: String,
            auto_healed: Option<bool>,
            escalated_actions: i64,
            customer_id: Option<String>,
            region: Option<String>,
            access_node: Option<String>,
            cpe_model: Option<String>,
            firmware: Option<String>,
            contact_id: Option<String>,
            reason: Option<String>,
            experiment_id: Option<String>,
            experiment_arm: Option<String>,
            started_at: i64,
        }

        #[derive(Debug, sqlx::FromRow)]
        struct ReportSurveyRow {
            survey_id: String,
            customer_id: String,
            nps: Option<i64>,
            csat: Option<i64>,
            region: Option<String>,
            access_node: Option<String>,
            cpe_model: Option<String>,
            firmware: Option<String>,
            category: Option<String>,
            auto_healed: Option<bool>,
            escalated_actions: Option<i64>,
            experiment_id: Option<String>,
            experiment_arm: Option<String>,
        }

        /// The (experiment, arm) of a report row, when an experiment covered its incident.
        fn report_arm(
            id: Option<String>,
            arm: Option<String>,
        ) -> Result<Option<(String, netmedic_proto::Arm)>> {
            Ok(experiment_arm(id, arm)?.map(|x| (x.experiment_id, x.arm)))
        }

        async fn report_in(conn: &mut Conn, params: &ReportParams) -> Result<Report> {
            let (from, to) = params.bounds();
            let mut agg = Aggregator::new(params.clone());
            {
                let mut rows = sqlx::query_as::<_, ReportIncidentRow>(
                    "SELECT i.agent_id, i.incident_id, i.category, i.auto_healed,
                        (SELECT COUNT(*) FROM incident_actions a
                          WHERE a.agent_id = i.agent_id AND a.incident_id = i.incident_id
                            AND a.outcome = 'escalated') AS escalated_actions,
                        s.customer_id, s.region, s.access_node, s.cpe_model, s.firmware,
                        c.contact_id, c.reason, i.experiment_id, i.experiment_arm, i.started_at
                     FROM incidents i
                     LEFT JOIN subscribers s ON s.agent_id = i.agent_id
                     LEFT JOIN contacts c ON c.customer_id = s.customer_id
                          AND c.created_at >= i.started_at AND c.created_at < i.started_at + $3
                     WHERE i.started_at >= $1 AND i.started_at < $2
                     ORDER BY i.agent_id, i.incident_id, c.contact_id",
                )
                .bind(from)
                .bind(to)
                .bind(params.contact_window_ms)
                .fetch(&mut *conn);
                while let Some(r) = rows.try_next().await? {
                    agg.incident($crate::analytics::IncidentRow {
                        category: parse_enum(&r.category, Category::parse, "category")?,
                        auto_healed: r.auto_healed,
                        escalated_actions: r.escalated_actions,
                        customer_id: r.customer_id,
                        dims: Dims {
                            region: r.region,
                            access_node: r.access_node,
                            cpe_model: r.cpe_model,
                            firmware: r.firmware,
                        },
                        contact_reason: r.contact_id.map(|_| r.reason.unwrap_or_default()),
                        experiment: report_arm(r.experiment_id, r.experiment_arm)?,
                        started_ms: r.started_at,
                        agent_id: r.agent_id,
                        incident_id: r.incident_id,
                    });
                }
            }
            agg.incidents_done();
            {
                let mut rows = sqlx::query_as::<_, ReportSurveyRow>(
                    "SELECT sv.survey_id, sv.customer_id, sv.nps, sv.csat,
                        s.region, s.access_node, s.cpe_model, s.firmware,
                        i.category, i.auto_healed,
                        (SELECT COUNT(*) FROM incident_actions a
                          WHERE a.agent_id = i.agent_id AND a.incident_id = i.incident_id
                            AND a.outcome = 'escalated') AS escalated_actions,
                        i.experiment_id, i.experiment_arm
                     FROM surveys sv
                     LEFT JOIN subscribers s ON s.customer_id = sv.customer_id
                     LEFT JOIN incidents i ON i.agent_id = s.agent_id
                          AND i.started_at <= sv.answered_at
                          AND i.started_at > sv.answered_at - $3
                     WHERE sv.answered_at >= $1 AND sv.answered_at < $2
                     ORDER BY sv.survey_id, s.agent_id, i.incident_id",
                )
                .bind(from)
                .bind(to)
                .bind(params.survey_window_ms)
                .fetch(&mut *conn);
                while let Some(r) = rows.try_next().await? {
                    let experiment = report_arm(r.experiment_id, r.experiment_arm)?;
                    let incident = match r.category {
                        None => None,
                        Some(c) => Some((
                            parse_enum(&c, Category::parse, "category")?,
                            Outcome::classify(
                                r.auto_healed,
                                r.escalated_actions.unwrap_or(0),
                                experiment.as_ref().map(|(_, arm)| *arm),
                            ),
                        )),
                    };
                    agg.survey($crate::analytics::SurveyRow {
                        survey_id: r.survey_id,
                        customer_id: r.customer_id,
                        nps: r.nps,
                        csat: r.csat,
                        dims: Dims {
                            region: r.region,
                            access_node: r.access_node,
                            cpe_model: r.cpe_model,
                            firmware: r.firmware,
                        },
                        incident,
                        experiment,
                    });
                }
            }
            {
                // Every candidate's count, also a single contact: it adds to the score.
                let mut rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT customer_id, COUNT(*) FROM contacts
                     WHERE created_at >= $1 AND created_at < $2
                     GROUP BY customer_id",
                )
                .bind(from)
                .bind(to)
                .fetch(&mut *conn);
                while let Some((c, n)) = rows.try_next().await? {
                    if agg.is_candidate(&c) {
                        agg.contacts(&c, u64::try_from(n).unwrap_or(0));
                    }
                }
            }
            baseline_contacts_in(conn, params, &mut agg).await?;
            let mut subs: [Vec<(String, u64)>; 4] = Default::default();
            for (i, col) in $crate::analytics::DIMENSIONS.iter().enumerate() {
                // `col` is one of four fixed column names, never input.
                let sql = format!(
                    "SELECT COALESCE({col}, '{}'), COUNT(*) FROM subscribers GROUP BY 1 ORDER BY 1",
                    $crate::analytics::UNKNOWN
                );
                let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut *conn)
                    .await?;
                subs[i] = rows
                    .into_iter()
                    .map(|(v, n)| (v, u64::try_from(n).unwrap_or(0)))
                    .collect();
            }
            let filter = NetworkEventFilter {
                active_only: false,
                from_ms: params.from_ms,
                to_ms: params.to_ms,
                limit: 500,
            };
            let events = network_events_in(conn, &filter, false).await?;
            agg.experiments(
                load_experiments(conn, false)
                    .await?
                    .into_iter()
                    .map(|r| $crate::analytics::ExperimentInfo {
                        id: r.experiment.id,
                        scope: r.experiment.scope,
                        control_permille: r.experiment.control_permille,
                        started_at: r.started_at,
                        ended_at: r.ended_at,
                    })
                    .collect(),
            );
            Ok(agg.finish(subs, events))
        }

        /// The contact rate of customers without incidents, by the incidents' window rule: the
        /// report's period (or, when open, the span of its contacts) cut into consecutive
        /// contact-window-long slots; of all (customer without incidents × slot), the share with
        /// at least one contact.
        async fn baseline_contacts_in(
            conn: &mut Conn,
            params: &ReportParams,
            agg: &mut Aggregator,
        ) -> Result<()> {
            let (from, to) = params.bounds();
            let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT MIN(created_at), MAX(created_at) FROM contacts
                 WHERE created_at >= $1 AND created_at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(&mut *conn)
            .await?;
            let start = params.from_ms.or(lo);
            let end = params.to_ms.or(hi.map(|h| h + 1));
            let (Some(start), Some(end)) = (start, end) else {
                return Ok(());
            };
            let window = params.contact_window_ms.max(1);
            if end <= start {
                return Ok(());
            }
            let slots_per_customer = (end - start + window - 1) / window;
            // Customers (with a device) none of whose devices had an incident in the period.
            const NO_INCIDENT: &str = "NOT EXISTS (SELECT 1 FROM subscribers s2
                JOIN incidents i ON i.agent_id = s2.agent_id
                WHERE s2.customer_id = s.customer_id
                  AND i.started_at >= $1 AND i.started_at < $2)";
            let (customers,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(DISTINCT s.customer_id) FROM subscribers s
                 WHERE s.customer_id IS NOT NULL AND {NO_INCIDENT}"
            )))
            .bind(from)
            .bind(to)
            .fetch_one(&mut *conn)
            .await?;
            let (with_contact,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM (
                    SELECT DISTINCT c.customer_id, (c.created_at - $3) / $4 AS slot
                    FROM contacts c
                    WHERE c.created_at >= $3 AND c.created_at < $5
                      AND EXISTS (SELECT 1 FROM subscribers s
                                  WHERE s.customer_id = c.customer_id AND {NO_INCIDENT})
                 ) t"
            )))
            .bind(from)
            .bind(to)
            .bind(start)
            .bind(window)
            .bind(end)
            .fetch_one(&mut *conn)
            .await?;
            let slots = u64::try_from(customers.saturating_mul(slots_per_customer)).unwrap_or(0);
            agg.baseline_contacts(u64::try_from(with_contact).unwrap_or(0), slots);
            Ok(())
        }

        async fn network_events_in(
            conn: &mut Conn,
            filter: &NetworkEventFilter,
            with_members: bool,
        ) -> Result<Vec<NetworkEventView>> {
            let rows: Vec<(String, String, i64, Option<i64>, i64, i64, i64)> = sqlx::query_as(
                "SELECT event_id, access_node, started_at, resolved_at, until_at, device_count,
                        member_count
                 FROM network_events
                 WHERE started_at >= $1 AND started_at < $2
                   AND ($3 = 0 OR resolved_at IS NULL)
                 ORDER BY started_at DESC, event_id
                 LIMIT $4",
            )
            .bind(filter.from_ms.unwrap_or(i64::MIN / 2))
            .bind(filter.to_ms.unwrap_or(i64::MAX / 2))
            .bind(i64::from(filter.active_only))
            .bind(i64::from(filter.limit))
            .fetch_all(&mut *conn)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, node, started, resolved, until, devices, members) in rows {
                let member_list = if with_members {
                    sqlx::query_as::<_, (String, String)>(
                        "SELECT agent_id, incident_id FROM network_event_members
                         WHERE event_id = $1 ORDER BY agent_id, incident_id",
                    )
                    .bind(&id)
                    .fetch_all(&mut *conn)
                    .await?
                } else {
                    Vec::new()
                };
                out.push(NetworkEventView {
                    event_id: id,
                    access_node: node,
                    started_at: timestamp(started, "started_at")?,
                    resolved_at: resolved.map(|r| timestamp(r, "resolved_at")).transpose()?,
                    advisory_until: timestamp(until, "until_at")?,
                    devices: u64::try_from(devices).unwrap_or(0),
                    incidents: u64::try_from(members).unwrap_or(0),
                    members: member_list,
                });
            }
            Ok(out)
        }

        /// One correlation pass inside the caller's write transaction.
        async fn correlate_in(
            conn: &mut Conn,
            params: &OutageParams,
            now: i64,
        ) -> Result<PassOutcome> {
            if let Some(sql) = CORRELATE_LOCK_SQL {
                sqlx::query(sql).execute(&mut *conn).await?;
            }
            let mut out = PassOutcome::default();
            let active: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT event_id, access_node, started_at FROM network_events
                 WHERE resolved_at IS NULL",
            )
            .fetch_all(&mut *conn)
            .await?;
            let active: Vec<ActiveEvent> = active
                .into_iter()
                .map(|(event_id, access_node, started_at_ms)| ActiveEvent {
                    event_id,
                    access_node,
                    started_at_ms,
                })
                .collect();
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "SELECT i.agent_id, i.incident_id, s.access_node, i.started_at
                 FROM incidents i
                 JOIN subscribers s ON s.agent_id = i.agent_id
                 LEFT JOIN network_event_members m
                   ON m.agent_id = i.agent_id AND m.incident_id = i.incident_id
                 WHERE m.event_id IS NULL AND s.access_node IS NOT NULL AND i.started_at >= ",
            );
            qb.push_bind(now - params.lookback_ms());
            qb.push(" AND i.category IN (");
            let mut sep = qb.separated(", ");
            for c in &params.categories {
                sep.push_bind(c.as_str());
            }
            qb.push(")");
            let rows: Vec<(String, String, String, i64)> =
                qb.build_query_as().fetch_all(&mut *conn).await?;
            let candidates: Vec<Candidate> = rows
                .into_iter()
                .map(|(agent_id, incident_id, access_node, started_at_ms)| Candidate {
                    agent_id,
                    incident_id,
                    access_node,
                    started_at_ms,
                })
                .collect();
            let plan = $crate::correlate::plan(&candidates, &active, params);
            for (id, node, started) in &plan.new_events {
                let n = sqlx::query(
                    "INSERT INTO network_events (event_id, access_node, started_at, resolved_at,
                        until_at, device_count, member_count, created_at, updated_at)
                     VALUES ($1, $2, $3, NULL, $4, 0, 0, $5, $5)
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(id)
                .bind(node)
                .bind(started)
                .bind(now + params.advisory_ms)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                out.events_created += n;
                log::info!(
                    "network event {id}: mass outage behind access node {node:?} (from {})",
                    timestamp(*started, "started_at")?
                );
            }
            for chunk in plan.members.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO network_event_members (agent_id, incident_id, event_id) ",
                );
                qb.push_values(chunk, |mut b, (a, i, e)| {
                    b.push_bind(a.clone())
                        .push_bind(i.clone())
                        .push_bind(e.clone());
                });
                qb.push(" ON CONFLICT (agent_id, incident_id) DO NOTHING");
                out.members_added += qb.build().execute(&mut *conn).await?.rows_affected();
            }
            // Counts, resolution and the advisory's validity of every unresolved event. An event
            // ends when fewer than K of its devices still have an open member incident: the
            // outage condition no longer holds. Waiting for every member would deadlock a device
            // whose own local fault (held by the advisory) keeps its incident open.
            let updated: Vec<(String, Option<i64>)> = sqlx::query_as(
                "UPDATE network_events SET
                    member_count = (SELECT COUNT(*) FROM network_event_members m
                                    WHERE m.event_id = network_events.event_id),
                    device_count = (SELECT COUNT(DISTINCT m.agent_id) FROM network_event_members m
                                    WHERE m.event_id = network_events.event_id),
                    resolved_at = CASE
                        WHEN (SELECT COUNT(DISTINCT m.agent_id) FROM network_event_members m
                              JOIN incidents i ON i.agent_id = m.agent_id
                                              AND i.incident_id = m.incident_id
                              WHERE m.event_id = network_events.event_id
                                AND i.status = 'open') >= $3
                        THEN NULL
                        ELSE COALESCE((SELECT MAX(i.resolved_at) FROM network_event_members m
                              JOIN incidents i ON i.agent_id = m.agent_id
                                              AND i.incident_id = m.incident_id
                              WHERE m.event_id = network_events.event_id), $2)
                    END,
                    until_at = $1,
                    updated_at = $2
                 WHERE resolved_at IS NULL
                 RETURNING event_id, resolved_at",
            )
            .bind(now + params.advisory_ms)
            .bind(now)
            .bind(i64::from(params.min_devices))
            .fetch_all(&mut *conn)
            .await?;
            for (id, resolved) in &updated {
                if resolved.is_some() {
                    out.events_resolved += 1;
                    log::info!(
                        "network event {id} resolved: fewer than {} of its devices still fail \
                         (any left are local faults and may be healed)",
                        params.min_devices
                    );
                }
            }
            Ok(out)
        }

        /// Upstream-outage advisories for heartbeating devices behind an access node with an
        /// unresolved network event.
        async fn outage_advisories(
            conn: &mut Conn,
            agent_ids: &[&str],
            now: i64,
        ) -> Result<BTreeMap<String, netmedic_proto::Advisory>> {
            let mut out = BTreeMap::new();
            if agent_ids.is_empty() {
                return Ok(out);
            }
            let any: Option<(String,)> = sqlx::query_as(
                "SELECT event_id FROM network_events WHERE resolved_at IS NULL AND until_at > $1
                 LIMIT 1",
            )
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
            if any.is_none() {
                return Ok(out);
            }
            for chunk in agent_ids.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT s.agent_id, ne.event_id, ne.until_at
                     FROM subscribers s
                     JOIN network_events ne ON ne.access_node = s.access_node
                     WHERE ne.resolved_at IS NULL AND ne.until_at > ",
                );
                qb.push_bind(now);
                qb.push(" AND s.agent_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.to_string());
                }
                qb.push(") ORDER BY ne.started_at");
                let rows: Vec<(String, String, i64)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                for (agent, event, until) in rows {
                    out.insert(
                        agent,
                        netmedic_proto::Advisory::UpstreamOutage {
                            network_event_id: event,
                            until: timestamp(until, "until_at")?,
                        },
                    );
                }
            }
            Ok(out)
        }
    };
}

/// The store methods of this module, one arm per capability trait, expanded inside its `impl`.
macro_rules! cx_methods {
    (cx) => {
        fn import<'a>(
            &'a self,
            source: &'a mut dyn RowSource,
            strict: bool,
        ) -> $crate::store::BoxFuture<'a, std::result::Result<ImportReport, ImportError>> {
            Box::pin(async move {
                let mut report = ImportReport::new(source.kind(), source.format(), strict);
                let mut batch: Vec<Record> = Vec::with_capacity(IMPORT_BATCH_ROWS);
                // Strict: one transaction for the whole file, rolled back on any bad row.
                let mut strict_tx = if strict {
                    Some(self.begin_write().await?)
                } else {
                    None
                };
                let mut pending: u64 = 0;
                loop {
                    let next = source.next_row()?;
                    let end = next.is_none();
                    match next {
                        None => {}
                        Some(Ok(r)) => {
                            report.rows += 1;
                            // After a bad row, a strict import only validates the rest.
                            if !(strict && report.skipped > 0) {
                                batch.push(r);
                            }
                        }
                        Some(Err(bad)) => {
                            report.rows += 1;
                            report.refuse(bad);
                            if strict {
                                batch.clear();
                            }
                        }
                    }
                    if batch.len() >= IMPORT_BATCH_ROWS || (end && !batch.is_empty()) {
                        let n = batch.len() as u64;
                        dedup_batch(&mut batch);
                        match &mut strict_tx {
                            Some(tx) => {
                                insert_records(tx, &batch).await?;
                                pending += n;
                            }
                            None => {
                                let mut tx = self.begin_write().await?;
                                insert_records(&mut tx, &batch).await?;
                                tx.commit().await.map_err(StoreError::from)?;
                                report.taken += n;
                            }
                        }
                        batch.clear();
                    }
                    if end {
                        break;
                    }
                }
                if let Some(tx) = strict_tx {
                    if report.skipped > 0 {
                        tx.rollback().await.map_err(StoreError::from)?;
                        report.committed = false;
                    } else {
                        tx.commit().await.map_err(StoreError::from)?;
                        report.taken = pending;
                    }
                }
                Ok(report)
            })
        }

        fn report<'a>(
            &'a self,
            params: &'a ReportParams,
        ) -> $crate::store::BoxFuture<'a, Result<Report>> {
            Box::pin(async move {
                // One read transaction: every query of the report sees one snapshot.
                let mut tx = self.pool.begin().await?;
                let r = report_in(&mut tx, params).await?;
                tx.commit().await?;
                Ok(r)
            })
        }
    };
    (incidents) => {
        fn correlate<'a>(
            &'a self,
            params: &'a OutageParams,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<PassOutcome>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let out = correlate_in(&mut tx, params, now.unix_millis()).await?;
                tx.commit().await?;
                if out != PassOutcome::default() {
                    // Upstream-outage advisories changed.
                    self.hb.advice_changed();
                }
                Ok(out)
            })
        }

        fn network_events<'a>(
            &'a self,
            filter: &'a NetworkEventFilter,
            with_members: bool,
        ) -> $crate::store::BoxFuture<'a, Result<Vec<NetworkEventView>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                network_events_in(&mut conn, filter, with_members).await
            })
        }
    };
}

pub(crate) use {cx_methods, cx_sql};
