//! The SQL of who may use the collector: API tokens, NOC console users and their sessions.
//! `access_sql!()` expands the functions over the backend's `Conn` inside `sql_store!`
//! (`shared.rs`); `access_methods!()` the matching [`super::AccessStore`] methods.

macro_rules! access_sql {
    () => {
        use $crate::auth::Role;
        use $crate::store::ApiTokenRecord;
        use $crate::store::noc_types::{NocUser, SessionRecord};

        /// Bulk enrolment, in multi-row statements of `CHUNK_ROWS`.
        async fn enrol_fleet_in(
            conn: &mut Conn,
            devices: &[(String, String, Option<String>)],
            now: i64,
        ) -> Result<u64> {
            let mut enrolled = 0;
            for chunk in devices.chunks(CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT agent_id FROM devices
                     WHERE token_sha256 IS NOT NULL AND revoked_at IS NULL AND agent_id IN (",
                );
                let mut sep = qb.separated(", ");
                for (id, _, _) in chunk {
                    sep.push_bind(id.clone());
                }
                qb.push(") ORDER BY agent_id LIMIT 5");
                let active: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                if !active.is_empty() {
                    let ids: Vec<String> = active.into_iter().map(|(a,)| format!("{a:?}")).collect();
                    return Err(StoreError::Conflict(format!(
                        "already enrolled and active (revoke first to issue new tokens): {}",
                        ids.join(", ")
                    )));
                }
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO devices (agent_id, token_sha256, enrolled_at) ",
                );
                qb.push_values(chunk, |mut b, (id, hash, _)| {
                    b.push_bind(id.clone()).push_bind(hash.clone()).push_bind(now);
                });
                qb.push(
                    " ON CONFLICT (agent_id) DO UPDATE SET token_sha256 = excluded.token_sha256,
                      enrolled_at = excluded.enrolled_at, revoked_at = NULL",
                );
                enrolled += qb.build().execute(&mut *conn).await?.rows_affected();
                let mapped: Vec<(&String, &String)> = chunk
                    .iter()
                    .filter_map(|(id, _, c)| c.as_ref().map(|c| (id, c)))
                    .collect();
                if !mapped.is_empty() {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO subscribers (agent_id, customer_id) ",
                    );
                    qb.push_values(mapped, |mut b, (id, c)| {
                        b.push_bind(id.clone()).push_bind(c.clone());
                    });
                    qb.push(" ON CONFLICT (agent_id) DO UPDATE SET customer_id = excluded.customer_id");
                    qb.build().execute(&mut *conn).await?;
                }
            }
            Ok(enrolled)
        }

        async fn api_token_add_in(
            conn: &mut Conn,
            name: &str,
            role: Role,
            sha: &str,
            now: i64,
        ) -> Result<()> {
            let existing: Option<(Option<i64>,)> =
                sqlx::query_as("SELECT revoked_at FROM api_tokens WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some((None,)) = existing {
                return Err(StoreError::Conflict(format!(
                    "an active API token named {name:?} exists; revoke it first"
                )));
            }
            sqlx::query(
                "INSERT INTO api_tokens (name, token_sha256, role, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, NULL)
                 ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256,
                    role = excluded.role, created_at = excluded.created_at, revoked_at = NULL",
            )
            .bind(name)
            .bind(sha)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn api_token_revoke_in(conn: &mut Conn, name: &str, now: i64) -> Result<bool> {
            let n = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            )
            .bind(name)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n > 0)
        }

        async fn api_token_list_in(conn: &mut Conn) -> Result<Vec<ApiTokenRecord>> {
            let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name",
            )
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|(name, role, created, revoked)| {
                    Ok(ApiTokenRecord {
                        name,
                        role: Role::parse(&role)
                            .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                        created_at: timestamp(created, "created_at")?,
                        revoked_at: revoked.map(|r| timestamp(r, "revoked_at")).transpose()?,
                    })
                })
                .collect()
        }

        async fn api_token_lookup_in(
            conn: &mut Conn,
            sha: &str,
        ) -> Result<Option<(String, Role)>> {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT name, role FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
            )
            .bind(sha)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|(n, r)| {
                Role::parse(&r)
                    .map(|role| (n, role))
                    .ok_or_else(|| StoreError::Corrupt(format!("role {r:?}")))
            })
            .transpose()
        }

        async fn noc_user_add_in(
            conn: &mut Conn,
            name: &str,
            role: Role,
            phc: &str,
            now: i64,
        ) -> Result<()> {
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT name FROM noc_users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *conn)
                    .await?;
            if exists.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a NOC user named {name:?} exists; use `user passwd` or `user remove`"
                )));
            }
            sqlx::query(
                "INSERT INTO noc_users (name, role, password_phc, created_at, password_set_at)
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(phc)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        fn noc_user_row(row: (String, String, String, i64)) -> Result<NocUser> {
            let (name, role, password_phc, created) = row;
            Ok(NocUser {
                name,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                password_phc,
                created_at: timestamp(created, "created_at")?,
            })
        }

        async fn noc_user_get_in(conn: &mut Conn, name: &str) -> Result<Option<NocUser>> {
            let row: Option<(String, String, String, i64)> = sqlx::query_as(
                "SELECT name, role, password_phc, created_at FROM noc_users WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(noc_user_row).transpose()
        }

        async fn noc_user_list_in(conn: &mut Conn) -> Result<Vec<NocUser>> {
            let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                "SELECT name, role, password_phc, created_at FROM noc_users ORDER BY name",
            )
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter().map(noc_user_row).collect()
        }

        /// Sets the password and ends every session of the user.
        async fn noc_user_set_password_in(
            conn: &mut Conn,
            name: &str,
            phc: &str,
            now: i64,
        ) -> Result<bool> {
            let n = sqlx::query(
                "UPDATE noc_users SET password_phc = $2, password_set_at = $3 WHERE name = $1",
            )
            .bind(name)
            .bind(phc)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM noc_sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            Ok(n > 0)
        }

        async fn noc_user_remove_in(conn: &mut Conn, name: &str) -> Result<bool> {
            sqlx::query("DELETE FROM noc_sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            let n = sqlx::query("DELETE FROM noc_users WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(n > 0)
        }

        async fn session_create_in(conn: &mut Conn, s: &SessionRecord, sha: &str) -> Result<()> {
            // Sweep expired sessions (cheap: indexed by expiry).
            sqlx::query("DELETE FROM noc_sessions WHERE expires_at < $1")
                .bind(s.created_at_ms)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO noc_sessions (session_sha256, user_name, csrf_token, created_at,
                                           last_seen_at, expires_at)
                 VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(sha)
            .bind(&s.user)
            .bind(&s.csrf_token)
            .bind(s.created_at_ms)
            .bind(s.expires_at_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// The live session with this hash: not past its absolute expiry, used within
        /// `idle_ms`; its user still exists (the role is read now, so a demotion counts at
        /// once). Touches `last_seen_at` at most once a minute.
        async fn session_get_in(
            conn: &mut Conn,
            sha: &str,
            now: i64,
            idle_ms: i64,
        ) -> Result<Option<SessionRecord>> {
            let row: Option<(String, String, String, i64, i64, i64)> = sqlx::query_as(
                "SELECT s.user_name, u.role, s.csrf_token, s.created_at, s.last_seen_at,
                        s.expires_at
                 FROM noc_sessions s JOIN noc_users u ON u.name = s.user_name
                 WHERE s.session_sha256 = $1",
            )
            .bind(sha)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((user, role, csrf_token, created, last_seen, expires)) = row else {
                return Ok(None);
            };
            if now >= expires || now - last_seen > idle_ms {
                return Ok(None);
            }
            if now - last_seen > 60_000 {
                sqlx::query("UPDATE noc_sessions SET last_seen_at = $2 WHERE session_sha256 = $1")
                    .bind(sha)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(Some(SessionRecord {
                user,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                csrf_token,
                created_at_ms: created,
                expires_at_ms: expires,
            }))
        }

        async fn session_delete_in(conn: &mut Conn, sha: &str) -> Result<()> {
            sqlx::query("DELETE FROM noc_sessions WHERE session_sha256 = $1")
                .bind(sha)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    };
}

/// The [`super::AccessStore`] methods of this module, expanded inside its `impl`.
macro_rules! access_methods {
    () => {
        fn enrol_fleet<'a>(
            &'a self,
            devices: &'a [(String, String, Option<String>)],
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<u64>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let n = enrol_fleet_in(&mut tx, devices, now.unix_millis()).await?;
                tx.commit().await?;
                Ok(n)
            })
        }

        fn api_token_add<'a>(
            &'a self,
            name: &'a str,
            role: Role,
            token_sha256: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                api_token_add_in(&mut tx, name, role, token_sha256, now.unix_millis()).await?;
                tx.commit().await?;
                Ok(())
            })
        }

        fn api_token_revoke<'a>(
            &'a self,
            name: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                api_token_revoke_in(&mut conn, name, now.unix_millis()).await
            })
        }

        fn api_token_list(&self) -> $crate::store::BoxFuture<'_, Result<Vec<ApiTokenRecord>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                api_token_list_in(&mut conn).await
            })
        }

        fn api_token_lookup<'a>(
            &'a self,
            token_sha256: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<Option<(String, Role)>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                api_token_lookup_in(&mut conn, token_sha256).await
            })
        }

        fn noc_user_add<'a>(
            &'a self,
            name: &'a str,
            role: Role,
            password_phc: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                noc_user_add_in(&mut tx, name, role, password_phc, now.unix_millis()).await?;
                tx.commit().await?;
                Ok(())
            })
        }

        fn noc_user_get<'a>(
            &'a self,
            name: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<Option<NocUser>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                noc_user_get_in(&mut conn, name).await
            })
        }

        fn noc_user_list(&self) -> $crate::store::BoxFuture<'_, Result<Vec<NocUser>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                noc_user_list_in(&mut conn).await
            })
        }

        fn noc_user_set_password<'a>(
            &'a self,
            name: &'a str,
            password_phc: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let found =
                    noc_user_set_password_in(&mut tx, name, password_phc, now.unix_millis())
                        .await?;
                tx.commit().await?;
                Ok(found)
            })
        }

        fn noc_user_remove<'a>(
            &'a self,
            name: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let found = noc_user_remove_in(&mut tx, name).await?;
                tx.commit().await?;
                Ok(found)
            })
        }

        fn session_create<'a>(
            &'a self,
            session_sha256: &'a str,
            session: &'a SessionRecord,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                session_create_in(&mut tx, session, session_sha256).await?;
                tx.commit().await?;
                Ok(())
            })
        }

        fn session_get<'a>(
            &'a self,
            session_sha256: &'a str,
            now: Timestamp,
            idle_ms: i64,
        ) -> $crate::store::BoxFuture<'a, Result<Option<SessionRecord>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                session_get_in(&mut conn, session_sha256, now.unix_millis(), idle_ms).await
            })
        }

        fn session_delete<'a>(
            &'a self,
            session_sha256: &'a str,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                session_delete_in(&mut conn, session_sha256).await
            })
        }
    };
}

pub(crate) use {access_methods, access_sql};
