//! Route plans: what `validate` compiles from the YAML once per load and the
//! proxy hooks only execute. One file per kind of step, each with its unit
//! tests beside it (see ARCHITECTURE.md, "Routes are compiled plans").

pub mod client_ip;
