//! Customers: how many orders and tickets each has.

use crate::domain::CustomerId;
use crate::postgres::{DbError, PgStore};

/// A customer: how many orders and tickets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub customer_id: CustomerId,
    pub orders: i64,
    pub tickets: i64,
}

impl PgStore {
    /// A customer's order and ticket counts; `None` when the customer has
    /// neither orders nor tickets.
    pub async fn customer(&self, customer_id: i64) -> Result<Option<CustomerSummary>, DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT (SELECT count(*) FROM orders WHERE customer_id = $1),
                        (SELECT tickets FROM customer_tickets WHERE customer_id = $1)",
            )
            .await?;
        let row = client.query_one(&statement, &[&customer_id]).await?;
        let orders: i64 = row.get(0);
        let tickets: Option<i64> = row.get(1);
        if orders == 0 && tickets.is_none() {
            return Ok(None);
        }
        Ok(Some(CustomerSummary {
            customer_id: CustomerId::from_trusted(customer_id),
            orders,
            tickets: tickets.unwrap_or(0),
        }))
    }
}
