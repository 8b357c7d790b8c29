//! CubeWalk Net backend.
//!
//! - [`store`]: chunk storage (embedded memory store and Redis) behind one trait.
//! - [`handlers`]: the TOKEN authorizer and the blocks handler as plain functions of
//!   (request, store/config), in `aws_lambda_events` types, so the Lambda mains and the local
//!   gateway are thin shells around the same code.
//! - [`subscriptions`]: the realtime API's subscription index and client-message handling
//!   (the WebSocket API that will drive them is not built yet).
//! - `gateway` (feature `local-gateway`, on by default): a local API Gateway (REST) that runs
//!   both handlers in one process. The Lambda binaries build without it.

#[cfg(feature = "local-gateway")]
pub mod gateway;
pub mod handlers;
pub mod store;
pub mod subscriptions;
