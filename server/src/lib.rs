//! CubeWalk Net backend.
//!
//! - [`store`]: chunk storage (embedded memory store and Redis) behind one trait.
//! - [`handlers`]: the TOKEN authorizer and the blocks handler as plain functions of
//!   (request, store/config), in `aws_lambda_events` types, so the Lambda mains and the local
//!   gateway are thin shells around the same code.
//! - [`gateway`]: a local API Gateway (REST) that runs both handlers in one process.

pub mod gateway;
pub mod handlers;
pub mod store;
