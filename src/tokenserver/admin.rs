//! Operator commands: `syncserver users list` and `syncserver users delete <uid|fxa-uid>`.
//! They open the tokenserver database directly (no running server needed).

use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::Row;

use super::db::{self, Db};
use crate::config::Settings;
use crate::state::{UserStore, UserUsage};

async fn open(settings: &Settings, storage: Arc<dyn UserStore>) -> Result<Db, String> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
    let pool = db::connect(&settings.tokenserver_database_url()).await?;
    Db::open(pool, storage).await
}

/// `syncserver users list`: a table of users; returns the text to print.
pub async fn list_users(
    settings: &Settings,
    storage: Arc<dyn UserStore>,
) -> Result<String, String> {
    let db = open(settings, storage.clone()).await?;
    let result = list(&db, storage.as_ref()).await;
    db.pool.close().await;
    result.map_err(|e| format!("tokenserver database: {e}"))
}

async fn list(db: &Db, storage: &dyn UserStore) -> Result<String, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.uid, u.email, u.created_at, n.node FROM users u \
         LEFT JOIN nodes n ON n.id = u.nodeid \
         WHERE u.service = $1 AND u.replaced_at IS NULL ORDER BY u.uid",
    )
    .bind(db.service)
    .fetch_all(&db.pool)
    .await?;
    let replaced: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM users WHERE service = $1 AND replaced_at IS NOT NULL",
    )
    .bind(db.service)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    let mut out = format!(
        "{:>8}  {:<32}  {:<16}  {:<16}  {:>12}  {}\n",
        "UID", "FXA UID", "CREATED (UTC)", "LAST SEEN (UTC)", "STORAGE B", "NODE"
    );
    for row in &rows {
        let uid: i64 = row.try_get("uid")?;
        let email: String = row.try_get("email")?;
        let created_at: i64 = row.try_get("created_at")?;
        let node: Option<String> = row.try_get("node")?;
        let (bytes, modified) = usage(storage, uid).await;
        let _ = writeln!(
            out,
            "{:>8}  {:<32}  {:<16}  {:<16}  {:>12}  {}",
            uid,
            email.split('@').next().unwrap_or(&email),
            format_ms(created_at),
            modified.map(format_ms).unwrap_or_else(|| "never".into()),
            bytes,
            node.unwrap_or_else(|| "(none)".into()),
        );
    }
    let _ = writeln!(
        out,
        "{} user(s); {} replaced row(s) kept as history (their storage is deleted after \
         tokenserver.replaced_user_retention)",
        rows.len(),
        replaced
    );
    Ok(out)
}

/// `syncserver users delete <uid|fxa-uid>`: removes every row of the account and its
/// storage; returns what was removed.
pub async fn delete_user(
    settings: &Settings,
    storage: Arc<dyn UserStore>,
    who: &str,
    confirmed: bool,
) -> Result<String, String> {
    if !confirmed {
        return Err("not confirmed; nothing deleted".into());
    }
    let db = open(settings, storage.clone()).await?;
    let result = delete(&db, settings, storage.as_ref(), who).await;
    db.pool.close().await;
    result
}

async fn delete(
    db: &Db,
    settings: &Settings,
    storage: &dyn UserStore,
    who: &str,
) -> Result<String, String> {
    let sql_err = |e: sqlx::Error| format!("tokenserver database: {e}");
    let email = match who.parse::<i64>() {
        Ok(uid) if who.len() < 32 => {
            let row = sqlx::query("SELECT email FROM users WHERE uid = $1 AND service = $2")
                .bind(uid)
                .bind(db.service)
                .fetch_optional(&db.pool)
                .await
                .map_err(sql_err)?;
            match row {
                Some(r) => r.try_get::<String, _>("email").map_err(sql_err)?,
                None => return Err(format!("no user with uid {uid}")),
            }
        }
        _ if who.contains('@') => who.to_string(),
        _ => format!("{who}@{}", settings.tokenserver.fxa_email_domain),
    };
    let uids: Vec<i64> = sqlx::query("SELECT uid FROM users WHERE email = $1 AND service = $2")
        .bind(&email)
        .bind(db.service)
        .fetch_all(&db.pool)
        .await
        .map_err(sql_err)?
        .iter()
        .map(|r| r.try_get("uid"))
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    if uids.is_empty() {
        return Err(format!("no user {who}"));
    }
    // Storage first: if that fails the rows remain and the command can be repeated.
    for uid in uids.iter().filter_map(|u| u64::try_from(*u).ok()) {
        storage.delete_user(uid).await?;
    }
    sqlx::query("DELETE FROM users WHERE email = $1 AND service = $2")
        .bind(&email)
        .bind(db.service)
        .execute(&db.pool)
        .await
        .map_err(sql_err)?;
    let list = uids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "deleted user {} (uid {list}) and its storage; the account can sync again as a new \
         user unless tokenserver.allow_new_users or allowed_fxa_uids forbid it\n",
        email.split('@').next().unwrap_or(&email)
    ))
}

/// Bytes on disk and the last modification, in ms; unknown counts as nothing (a listing
/// should not fail for one unreadable file).
async fn usage(storage: &dyn UserStore, uid: i64) -> (u64, Option<i64>) {
    let Ok(uid) = u64::try_from(uid) else {
        return (0, None);
    };
    match storage.usage(uid).await {
        Ok(Some(UserUsage { bytes, modified_ms })) => (bytes, modified_ms),
        Ok(None) | Err(_) => (0, None),
    }
}

/// `YYYY-MM-DD HH:MM` in UTC (no date library needed for one column).
fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_ms(0), "1970-01-01 00:00");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00");
    }
}
