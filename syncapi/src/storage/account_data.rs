//! Which account data changed when: the content stays userapi's.

use sqlx::AnyConnection;

use super::Store;

impl Store {
    pub async fn account_data_changed(
        &self,
        tx: &mut AnyConnection,
        pos: i64,
        user_id: &str,
        room_id: &str,
        data_type: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO syncapi_account_data (user_id, room_id, data_type, pos) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, room_id, data_type) DO UPDATE SET pos = $4",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(data_type)
        .bind(pos)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// (room id, "" for global; type) of the user's account data changed in (from, to].
    pub async fn account_data_changes(
        &self,
        user_id: &str,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT room_id, data_type FROM syncapi_account_data WHERE user_id = $1 AND pos > $2 AND pos <= $3 ORDER BY pos",
        )
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }
}
