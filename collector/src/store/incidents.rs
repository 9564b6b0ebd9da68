//! The incident queries of the SQL backends: pages in three orders with keyset cursors, and one
//! incident with its timeline. `incidents_sql!()` expands the functions over the backend's `Conn`
//! and `Db`; `incidents_methods!()` the matching [`super::IncidentStore`] methods.

macro_rules! incidents_sql {
    () => {
        const INCIDENT_COLUMNS: &str = "i.agent_id, i.incident_id, i.check_id, i.cause, \
            i.category, i.severity, i.status, i.started_at, i.resolved_at, i.auto_healed, \
            i.summary, i.evidence, i.event_count, i.experiment_id, i.experiment_arm";

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
            // The status as a literal (one of two fixed words, not input): only then can the
            // planner prove that the partial index of open incidents (migrations SQLite 0010,
            // PostgreSQL 0009) holds every row the page needs.
            if let Some(v) = filter.status {
                q.push(format!(" AND i.status = '{}'", status_str(v)));
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
            experiment_id: Option<String>,
            experiment_arm: Option<String>,
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
                let experiment = experiment_arm(self.experiment_id, self.experiment_arm)?;
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
                    experiment,
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
    };
}

/// The [`super::IncidentStore`] methods of this module, expanded inside its `impl`.
macro_rules! incidents_methods {
    () => {
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
    };
}

pub(crate) use {incidents_methods, incidents_sql};
