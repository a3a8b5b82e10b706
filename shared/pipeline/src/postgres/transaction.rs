//! A pooled connection inside a transaction (or holding a session lock),
//! which never goes back to the pool mid-transaction.
//!
//! A future can be dropped at any await: an error returned early, a request
//! cancelled by its client, a Lambda timeout. If a plain pooled connection
//! is dropped after `BEGIN` went out, the pool hands it to the next caller
//! still inside that transaction, and whatever it was waiting for (a lock, a
//! row) it acquires later and holds forever. The guard closes such a
//! connection instead (the server rolls back), unless the transaction was
//! ended with [`Transaction::end`].

use deadpool_postgres::{Object, Pool};

use super::DbError;

pub struct Transaction {
    client: Option<Object>,
}

impl Transaction {
    /// Takes a connection from the pool and runs `begin` (which must start a
    /// transaction, e.g. `BEGIN; SET LOCAL ...`). The guard exists before the
    /// statement is sent, so a cancellation at any point is covered.
    pub async fn begin(pool: &Pool, begin: &str) -> Result<Self, DbError> {
        let transaction = Self::guard(pool).await?;
        transaction.client().batch_execute(begin).await?;
        Ok(transaction)
    }

    /// Takes a connection from the pool under the guard, sending nothing
    /// yet: for what must come before the transaction (a session lock).
    pub async fn guard(pool: &Pool) -> Result<Self, DbError> {
        Ok(Self {
            client: Some(pool.get().await?),
        })
    }

    /// Lets the connection go back to the pool as it is: only for a guard
    /// that began no transaction and holds no lock.
    pub fn unused(mut self) {
        drop(self.client.take());
    }

    pub fn client(&self) -> &Object {
        self.client.as_ref().expect("the transaction is open")
    }

    /// Ends the transaction with `end` (`COMMIT` or `ROLLBACK`) and only then
    /// lets the connection go back to the pool.
    pub async fn end(mut self, end: &str) -> Result<(), DbError> {
        self.client().batch_execute(end).await?;
        drop(self.client.take());
        Ok(())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Detached from the pool, the connection closes with the client.
            drop(Object::take(client));
        }
    }
}
