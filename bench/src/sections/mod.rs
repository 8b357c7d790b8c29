//! One module per report section.

pub(crate) mod cost;
pub(crate) mod csharp;
pub(crate) mod neighbourhood;
pub(crate) mod publisher;
pub(crate) mod realtime;
pub(crate) mod scaling;
pub(crate) mod sdk;
pub(crate) mod server;
pub(crate) mod sizes;
