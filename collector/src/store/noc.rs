//! The SQL of the NOC console (acknowledgements and notes, the overview's aggregates, a
//! customer's records), shared by every backend: `noc_sql!()` expands the functions over the
//! backend's `Conn` inside `sql_store!` (`shared.rs`), `noc_methods!(incidents | cx)` the
//! matching methods of [`super::IncidentStore`] and [`super::CxStore`]. Console users and
//! sessions are in `access.rs`.

macro_rules! noc_sql {
    () => {
        use $crate::store::noc_types::{
            ContactRecord, HEAL_BUCKET_SECS, IncidentAck, IncidentNote, Overview, SubscriberRecord,
            SurveyRecord,
        };

        async fn incident_exists(
            conn: &mut Conn,
            agent_id: &str,
            incident_id: &str,
        ) -> Result<bool> {
            let row: Option<(i64,)> = sqlx::query_as(
                "SELECT CAST(1 AS BIGINT) FROM incidents WHERE agent_id = $1 AND incident_id = $2",
            )
            .bind(agent_id)
            .bind(incident_id)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(row.is_some())
        }

        /// Acknowledges an incident (the first acknowledgement stays); returns the one in force.
        async fn incident_ack_in(
            conn: &mut Conn,
            agent_id: &str,
            incident_id: &str,
            by: &str,
            now: i64,
        ) -> Result<IncidentAck> {
            if !incident_exists(conn, agent_id, incident_id).await? {
                return Err(StoreError::NoSuchIncident(format!(
                    "{agent_id}/{incident_id}"
                )));
            }
            sqlx::query(
                "INSERT INTO incident_acks (agent_id, incident_id, acked_by, acked_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (agent_id, incident_id) DO NOTHING",
            )
            .bind(agent_id)
            .bind(incident_id)
            .bind(by)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            let (acked_by, at): (String, i64) = sqlx::query_as(
                "SELECT acked_by, acked_at FROM incident_acks
                 WHERE agent_id = $1 AND incident_id = $2",
            )
            .bind(agent_id)
            .bind(incident_id)
            .fetch_one(&mut *conn)
            .await?;
            Ok(IncidentAck {
                acked_by,
                acked_at: timestamp(at, "acked_at")?,
            })
        }

        async fn incident_note_add_in(
            conn: &mut Conn,
            agent_id: &str,
            incident_id: &str,
            author: &str,
            now: i64,
            body: &str,
        ) -> Result<()> {
            if !incident_exists(conn, agent_id, incident_id).await? {
                return Err(StoreError::NoSuchIncident(format!(
                    "{agent_id}/{incident_id}"
                )));
            }
            sqlx::query(
                "INSERT INTO incident_notes (agent_id, incident_id, author, written_at, body)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(agent_id)
            .bind(incident_id)
            .bind(author)
            .bind(now)
            .bind(body)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn incident_notes_in(
            conn: &mut Conn,
            agent_id: &str,
            incident_id: &str,
        ) -> Result<(Option<IncidentAck>, Vec<IncidentNote>)> {
            let ack: Option<(String, i64)> = sqlx::query_as(
                "SELECT acked_by, acked_at FROM incident_acks
                 WHERE agent_id = $1 AND incident_id = $2",
            )
            .bind(agent_id)
            .bind(incident_id)
            .fetch_optional(&mut *conn)
            .await?;
            let ack = ack
                .map(|(acked_by, at)| {
                    Ok::<_, StoreError>(IncidentAck {
                        acked_by,
                        acked_at: timestamp(at, "acked_at")?,
                    })
                })
                .transpose()?;
            let rows: Vec<(String, i64, String)> = sqlx::query_as(
                "SELECT author, written_at, body FROM incident_notes
                 WHERE agent_id = $1 AND incident_id = $2 ORDER BY note_id",
            )
            .bind(agent_id)
            .bind(incident_id)
            .fetch_all(&mut *conn)
            .await?;
            let notes = rows
                .into_iter()
                .map(|(author, at, body)| {
                    Ok(IncidentNote {
                        author,
                        written_at: timestamp(at, "written_at")?,
                        body,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((ack, notes))
        }

        /// Acknowledgements of the listed incidents (one page of the list).
        async fn incident_acks_in(
            conn: &mut Conn,
            keys: &[(String, String)],
        ) -> Result<BTreeMap<(String, String), IncidentAck>> {
            let mut out = BTreeMap::new();
            for chunk in keys.chunks(CHUNK_ROWS) {
                if chunk.is_empty() {
                    continue;
                }
                let mut sql = String::from(
                    "SELECT agent_id, incident_id, acked_by, acked_at FROM incident_acks
                     WHERE (agent_id, incident_id) IN (",
                );
                for i in 0..chunk.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
                }
                sql.push(')');
                let mut q =
                    sqlx::query_as::<_, (String, String, String, i64)>(sqlx::AssertSqlSafe(sql));
                for (a, i) in chunk {
                    q = q.bind(a.as_str()).bind(i.as_str());
                }
                for (a, i, by, at) in q.fetch_all(&mut *conn).await? {
                    out.insert(
                        (a, i),
                        IncidentAck {
                            acked_by: by,
                            acked_at: timestamp(at, "acked_at")?,
                        },
                    );
                }
            }
            Ok(out)
        }

        /// The console's overview: fleet state now, open incidents, the last `since_ms`.
        async fn overview_in(
            conn: &mut Conn,
            now: i64,
            offline_before_ms: i64,
            since_ms: i64,
        ) -> Result<Overview> {
            let (never, online, offline, revoked): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT
                    COALESCE(SUM(CASE WHEN revoked_at IS NULL AND last_seen_at IS NULL
                                      THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN revoked_at IS NULL AND last_seen_at >= $1
                                      THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN revoked_at IS NULL AND last_seen_at < $1
                                      THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END), 0)
                 FROM devices",
            )
            .bind(offline_before_ms)
            .fetch_one(&mut *conn)
            .await?;
            // One probe of the open-incidents index per online device (migration 0006/0005),
            // not a scan of every open incident.
            let (degraded,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM devices d
                 WHERE d.revoked_at IS NULL AND d.last_seen_at >= $1
                   AND EXISTS (SELECT 1 FROM incidents i
                               WHERE i.agent_id = d.agent_id AND i.status = 'open')",
            )
            .bind(offline_before_ms)
            .fetch_one(&mut *conn)
            .await?;
            let open: Vec<(String, i64)> = sqlx::query_as(
                "SELECT category, COUNT(*) FROM incidents WHERE status = 'open'
                 GROUP BY category ORDER BY category",
            )
            .fetch_all(&mut *conn)
            .await?;
            let open_by_category = open
                .into_iter()
                .map(|(c, n)| {
                    Ok((
                        parse_enum(&c, Category::parse, "category")?,
                        n.max(0) as u64,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let (started, resolved, healed): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*),
                        COALESCE(SUM(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END), 0),
                        COALESCE(SUM(CASE WHEN auto_healed = $2 THEN 1 ELSE 0 END), 0)
                 FROM incidents WHERE started_at >= $1",
            )
            .bind(since_ms)
            .bind(true)
            .fetch_one(&mut *conn)
            .await?;
            let hourly: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT (started_at - $1) / 3600000 AS h, category, COUNT(*)
                 FROM incidents WHERE started_at >= $1
                 GROUP BY h, category ORDER BY h, category",
            )
            .bind(since_ms)
            .fetch_all(&mut *conn)
            .await?;
            let per_hour = hourly
                .into_iter()
                .map(|(h, c, n)| {
                    Ok((
                        h,
                        parse_enum(&c, Category::parse, "category")?,
                        n.max(0) as u64,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            // Time to heal of the auto-healed incidents, bucketed in SQL.
            let mut case = String::from("CASE");
            for (i, secs) in HEAL_BUCKET_SECS.iter().enumerate() {
                case.push_str(&format!(
                    " WHEN resolved_at - started_at < {} THEN {i}",
                    secs * 1000
                ));
            }
            case.push_str(&format!(" ELSE {} END", HEAL_BUCKET_SECS.len()));
            let sql = format!(
                "SELECT CAST({case} AS BIGINT) AS b, COUNT(*) FROM incidents
                 WHERE started_at >= $1 AND auto_healed = $2 GROUP BY b ORDER BY b"
            );
            let buckets: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(since_ms)
                .bind(true)
                .fetch_all(&mut *conn)
                .await?;
            let mut heal_buckets = vec![0u64; HEAL_BUCKET_SECS.len() + 1];
            for (b, n) in buckets {
                if let Some(slot) = usize::try_from(b)
                    .ok()
                    .and_then(|b| heal_buckets.get_mut(b))
                {
                    *slot = n.max(0) as u64;
                }
            }
            let (open_events,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM network_events WHERE resolved_at IS NULL")
                    .fetch_one(&mut *conn)
                    .await?;
            Ok(Overview {
                at: timestamp(now, "now")?,
                since: timestamp(since_ms, "since")?,
                devices_never_seen: never.max(0) as u64,
                devices_online: online.max(0) as u64,
                devices_offline: offline.max(0) as u64,
                devices_revoked: revoked.max(0) as u64,
                devices_degraded: degraded.max(0) as u64,
                open_by_category,
                started: started.max(0) as u64,
                resolved: resolved.max(0) as u64,
                auto_healed: healed.max(0) as u64,
                per_hour,
                heal_buckets,
                open_network_events: open_events.max(0) as u64,
            })
        }

        async fn subscribers_in(
            conn: &mut Conn,
            by_customer: bool,
            key: &str,
        ) -> Result<Vec<SubscriberRecord>> {
            let sql = format!(
                "SELECT agent_id, customer_id, region, access_node, plan, cpe_model, firmware
                 FROM subscribers WHERE {} = $1 ORDER BY agent_id LIMIT 100",
                if by_customer {
                    "customer_id"
                } else {
                    "agent_id"
                }
            );
            let rows: Vec<(
                String,
                String,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            )> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(agent_id, customer_id, region, access_node, plan, cpe_model, firmware)| {
                        SubscriberRecord {
                            agent_id,
                            customer_id,
                            region,
                            access_node,
                            plan,
                            cpe_model,
                            firmware,
                        }
                    },
                )
                .collect())
        }

        /// A customer's contacts and survey answers in `[from, to)`, newest first, at most
        /// `limit` of each.
        async fn customer_records_in(
            conn: &mut Conn,
            customer_id: &str,
            from_ms: i64,
            to_ms: i64,
            limit: i64,
        ) -> Result<(Vec<ContactRecord>, Vec<SurveyRecord>)> {
            let contacts: Vec<(String, i64, Option<String>, Option<String>, Option<i64>)> =
                sqlx::query_as(
                    "SELECT contact_id, created_at, channel, reason, resolved_at FROM contacts
                     WHERE customer_id = $1 AND created_at >= $2 AND created_at < $3
                     ORDER BY created_at DESC, contact_id DESC LIMIT $4",
                )
                .bind(customer_id)
                .bind(from_ms)
                .bind(to_ms)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            let contacts = contacts
                .into_iter()
                .map(|(contact_id, created, channel, reason, resolved)| {
                    Ok(ContactRecord {
                        contact_id,
                        created_at: timestamp(created, "created_at")?,
                        channel,
                        reason,
                        resolved_at: resolved.map(|r| timestamp(r, "resolved_at")).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let surveys: Vec<(
                String,
                i64,
                Option<i64>,
                Option<i64>,
                Option<String>,
                Option<String>,
            )> = sqlx::query_as(
                "SELECT survey_id, answered_at, nps, csat, channel, verbatim FROM surveys
                     WHERE customer_id = $1 AND answered_at >= $2 AND answered_at < $3
                     ORDER BY answered_at DESC, survey_id DESC LIMIT $4",
            )
            .bind(customer_id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            let surveys = surveys
                .into_iter()
                .map(|(survey_id, answered, nps, csat, channel, verbatim)| {
                    Ok(SurveyRecord {
                        survey_id,
                        answered_at: timestamp(answered, "answered_at")?,
                        nps,
                        csat,
                        channel,
                        verbatim,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((contacts, surveys))
        }
    };
}

/// The store methods of this module, one arm per capability trait, expanded inside its `impl`.
macro_rules! noc_methods {
    (incidents) => {
        fn incident_ack<'a>(
            &'a self,
            agent_id: &'a str,
            incident_id: &'a str,
            by: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<IncidentAck>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let ack =
                    incident_ack_in(&mut tx, agent_id, incident_id, by, now.unix_millis()).await?;
                tx.commit().await?;
                Ok(ack)
            })
        }

        fn incident_note_add<'a>(
            &'a self,
            agent_id: &'a str,
            incident_id: &'a str,
            author: &'a str,
            now: Timestamp,
            body: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                incident_note_add_in(
                    &mut tx,
                    agent_id,
                    incident_id,
                    author,
                    now.unix_millis(),
                    body,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
        }

        fn incident_notes<'a>(
            &'a self,
            agent_id: &'a str,
            incident_id: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<(Option<IncidentAck>, Vec<IncidentNote>)>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                incident_notes_in(&mut conn, agent_id, incident_id).await
            })
        }

        fn incident_acks<'a>(
            &'a self,
            keys: &'a [(String, String)],
        ) -> $crate::store::BoxFuture<'a, Result<BTreeMap<(String, String), IncidentAck>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                incident_acks_in(&mut conn, keys).await
            })
        }

        fn overview<'a>(
            &'a self,
            now: Timestamp,
            offline_before_ms: i64,
            since_ms: i64,
        ) -> $crate::store::BoxFuture<'a, Result<Overview>> {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                let o =
                    overview_in(&mut tx, now.unix_millis(), offline_before_ms, since_ms).await?;
                tx.commit().await?;
                Ok(o)
            })
        }
    };
    (cx) => {
        fn subscribers_of_customer<'a>(
            &'a self,
            customer_id: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<Vec<SubscriberRecord>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                subscribers_in(&mut conn, true, customer_id).await
            })
        }

        fn subscriber_of_device<'a>(
            &'a self,
            agent_id: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<Option<SubscriberRecord>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                Ok(subscribers_in(&mut conn, false, agent_id)
                    .await?
                    .into_iter()
                    .next())
            })
        }

        fn customer_records<'a>(
            &'a self,
            customer_id: &'a str,
            from_ms: i64,
            to_ms: i64,
            limit: u32,
        ) -> $crate::store::BoxFuture<'a, Result<(Vec<ContactRecord>, Vec<SurveyRecord>)>> {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                let r = customer_records_in(&mut tx, customer_id, from_ms, to_ms, i64::from(limit))
                    .await?;
                tx.commit().await?;
                Ok(r)
            })
        }
    };
}

pub(crate) use {noc_methods, noc_sql};
