//! The routes, one file per resource; `orders` and `analytics` at the
//! crate root assemble them into each function's router.

pub mod analytics;
pub mod customers;
pub mod exports;
pub mod health;
pub mod ingestions;
pub mod orders;
pub mod problems;
pub mod sales;
pub mod uploads;
