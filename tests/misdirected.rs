//! Misdirected requests over TLS (RFC 9110 §15.5.20) when the client sent no
//! SNI or one that names no site: the default site's certificate was
//! presented, so a request for another site's host gets 421, over HTTP/1.1
//! and h2, while the default site's own hosts are served.

use crate::fixture::Scene;
use crate::support::tls::insecure_client_config;
use crate::support::*;

/// Server names the client presents: an IP address sends no SNI at all;
/// `unknown.test` names no site. Neither certificate matches, hence the
/// test-only verifier that accepts any certificate.
const NO_MATCHING_SNI: [&str; 2] = ["127.0.0.1", "unknown.test"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_matching_sni_another_sites_host_is_misdirected_over_h1() {
    let s = Scene::start().await;
    for sni in NO_MATCHING_SNI {
        // A 421 closes its connection: one connection per request.
        for (host, want) in [
            ("secure.test", 421),
            ("app.test", 200),
            ("x.wild.test", 200),
        ] {
            let config = insecure_client_config(&["http/1.1"]);
            let mut c = H1Conn::connect_tls_with(s.https, sni, config)
                .await
                .expect("TLS");
            let tls = c.tls.clone().expect("TLS info");
            assert!(
                tls.subject_alt_names.contains(&"app.test".to_string()),
                "SNI {sni}: the default site's certificate is presented"
            );
            let r = c.get("/", host).await.expect("response");
            assert_eq!(r.status, want, "SNI {sni}, Host {host}: {}", r.text());
        }
    }
    assert_eq!(
        s.web.request_count(),
        4,
        "no misdirected request reached an app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_matching_sni_another_sites_host_is_misdirected_over_h2() {
    let s = Scene::start().await;
    for sni in NO_MATCHING_SNI {
        let mut c = H2Conn::connect_with(s.https, sni, insecure_client_config(&["h2"]))
            .await
            .expect("h2");
        c.set_authority("secure.test");
        let r = c.get("/").await.expect("response");
        assert_eq!(
            r.status,
            421,
            "SNI {sni}, :authority secure.test: {}",
            r.text()
        );
        c.set_authority("app.test");
        let r = c.get("/").await.expect("response");
        assert_eq!(
            r.status,
            200,
            "SNI {sni}, :authority app.test: {}",
            r.text()
        );
    }
    assert_eq!(
        s.web.request_count(),
        2,
        "no misdirected request reached an app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_listener_still_serves_any_site() {
    let s = Scene::start().await;
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    // secure.test is a TLS site without `plain_http: serve`: redirected, as before.
    let r = c.get("/", "secure.test").await.expect("response");
    assert_eq!(r.status, 308);
    for host in ["app.test", "plain.test"] {
        let r = c.get("/", host).await.expect("response");
        assert_eq!(r.status, 200, "{host}");
    }
}
