//! greenlight's one integration test binary: scenarios that start real
//! upstreams and the real `greenlight` binary on loopback ports and drive them
//! with real HTTP/1.1, h2-over-TLS and WebSocket clients. One module per topic;
//! `support/` holds the servers, clients, test PKI and process control.

mod support;

mod access;
mod acme;
mod acme_module;
mod admin_api;
mod balancing;
mod body;
mod checks_maps;
mod cli;
mod cli_conventions;
mod client_certs;
mod client_ip;
mod cluster;
mod cluster_acme;
mod cluster_more;
mod compress;
mod config_size;
mod container;
mod core_proxy;
mod dashboard;
mod early_hup;
mod env_refs;
mod exchange;
mod files;
mod files_more;
mod files_mp4;
mod files_send;
mod fixture;
mod grafana;
mod h2_flood;
mod health;
mod import_nginx;
mod lean_path;
mod lifecycle;
mod limits;
mod limits_rate;
mod live_config;
mod matching;
mod misdirected;
mod observability;
mod pages;
mod protocol;
mod proxy_redirect;
mod quiet_logs;
mod retry;
mod route_metrics;
mod site_listeners;
mod slow_clients;
mod smuggling;
mod steps;
mod unix_upstream;
mod upstream_pool;
mod upstream_tls;
