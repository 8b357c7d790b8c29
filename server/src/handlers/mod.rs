//! The Lambda handlers as plain functions.

pub mod admin;
pub mod authorizer;
pub mod blocks;
pub mod broker_authorizer;
pub mod login;
