//! The fleet SQL of the backends: enrolment and revocation, device records, kill switches and
//! diagnostics requests. `devices_sql!()` expands the functions over the backend's `Conn`;
//! `devices_methods!()` the matching [`super::FleetStore`] methods.

macro_rules! devices_sql {
    () => {
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
    };
}

/// The [`super::FleetStore`] methods of this module, expanded inside its `impl`.
macro_rules! devices_methods {
    () => {
        fn enrol_device<'a>(
            &'a self,
            agent_id: &'a str,
            region: Option<&'a str>,
            token_sha256: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                enrol_device_in(&mut tx, agent_id, region, token_sha256, now.unix_millis()).await?;
                tx.commit().await?;
                // A token of the device revoked by another process is not answered from here.
                self.hb.revoke_device(agent_id);
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
                let revoked = revoke_device_in(&mut conn, agent_id, now.unix_millis()).await;
                // After the commit: the very next heartbeat of the device reads the database.
                self.hb.revoke_device(agent_id);
                revoked
            })
        }

        fn list_devices<'a>(
            &'a self,
            filter: &'a DeviceFilter,
        ) -> $crate::store::BoxFuture<'a, Result<Vec<DeviceRecord>>> {
            Box::pin(async move {
                // This process's own answered heartbeats are visible at once.
                self.flush_seen().await?;
                let mut conn = self.pool.acquire().await?;
                list_devices_in(&mut conn, filter).await
            })
        }

        fn get_device<'a>(
            &'a self,
            agent_id: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<Option<DeviceRecord>>> {
            Box::pin(async move {
                // This process's own answered heartbeats are visible at once.
                self.flush_seen().await?;
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
                let set = set_killswitch_in(&mut conn, scope, reason, now.unix_millis()).await;
                self.hb.advice_changed();
                set
            })
        }

        fn clear_killswitch<'a>(
            &'a self,
            scope: &'a KillScope,
        ) -> $crate::store::BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                let cleared = clear_killswitch_in(&mut conn, scope).await;
                self.hb.advice_changed();
                cleared
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
                let requested = request_diagnostics_in(
                    &mut conn,
                    agent_id,
                    checks,
                    request_id,
                    now.unix_millis(),
                )
                .await;
                self.hb.advice_changed();
                requested
            })
        }
    };
}

pub(crate) use {devices_methods, devices_sql};
