//! HTTP/2 control-frame floods through the real binary over TLS (ALPN h2):
//! a client that sends PINGs or SETTINGS without end gets GOAWAY
//! ENHANCE_YOUR_CALM after a bounded number and its connection closes, while
//! a normal client that pings now and then between requests keeps working.
//! The frames are written by hand so that nothing in a client library paces
//! or refuses them.

use crate::fixture::Scene;
use crate::support::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

use crate::support::h2raw::*;

/// How many flood frames the test sends at most: far past greenlight's
/// budget (1,000 at once), far below what takes long to send.
const FLOOD_FRAMES: usize = 20_000;

/// The most acknowledgements the server may send before its GOAWAY: the
/// budget of 1,000 plus its refill (50 a second) over a slow debug build.
const MAX_ANSWERED: usize = 1_500;

/// What the server did about a flood of `one` frames.
struct FloodOutcome {
    /// Acknowledgements (PING or SETTINGS ACKs) received before the GOAWAY.
    answered: usize,
    /// The GOAWAY's error code, if one came.
    goaway: Option<u32>,
    /// Whether the server then closed the connection.
    closed: bool,
}

/// Opens an h2 connection and sends up to [`FLOOD_FRAMES`] copies of `one`,
/// reading what comes back until a GOAWAY and the end of the connection.
async fn flood(s: &Scene, one: Vec<u8>, ack_kind: u8) -> FloodOutcome {
    let (stream, tls) = tls_connect(s.https, "app.test", &["h2"], &s.root())
        .await
        .expect("TLS");
    assert_eq!(tls.alpn_str(), Some("h2"));
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let mut start = PREFACE.to_vec();
        start.extend(frame(SETTINGS, 0, 0, &[]));
        wr.write_all(&start).await?;
        let batch: Vec<u8> = one.repeat(500);
        for _ in 0..FLOOD_FRAMES / 500 {
            wr.write_all(&batch).await?;
        }
        wr.flush().await?;
        // Keep the write half open: the server, not the client, must close.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(wr)
    });
    let mut out = FloodOutcome {
        answered: 0,
        goaway: None,
        closed: false,
    };
    let read = async {
        while let Ok((kind, flags, _, payload)) = read_frame(&mut rd).await {
            if kind == ack_kind && flags & ACK != 0 {
                out.answered += 1;
            } else if kind == GOAWAY && out.goaway.is_none() {
                out.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
            }
        }
        out.closed = true;
    };
    // Bounded: an unprotected server answers all frames, then goes quiet.
    let _ = tokio::time::timeout(Duration::from_secs(15), read).await;
    writer.abort();
    eprintln!(
        "flood: {} answered, GOAWAY {:?}, closed {}",
        out.answered, out.goaway, out.closed
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_gets_goaway_enhance_your_calm_and_the_connection_closes() {
    let s = Scene::start().await;
    let out = flood(&s, frame(PING, 0, 0, b"flooding"), PING).await;
    assert_eq!(
        out.goaway,
        Some(ENHANCE_YOUR_CALM),
        "no GOAWAY ENHANCE_YOUR_CALM after {FLOOD_FRAMES} PINGs ({} answered)",
        out.answered
    );
    assert!(
        out.answered <= MAX_ANSWERED,
        "{} PINGs answered before the GOAWAY",
        out.answered
    );
    assert!(out.closed, "the connection is closed after the GOAWAY");
    // The server is fine: a new connection is served.
    let (r, _) = h2_get(s.https, "app.test", "/", &s.root())
        .await
        .expect("h2 after the flood");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_gets_goaway_enhance_your_calm_and_the_connection_closes() {
    let s = Scene::start().await;
    // SETTINGS_INITIAL_WINDOW_SIZE = 65,535 (the default): valid, no effect.
    let one = frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
    let out = flood(&s, one, SETTINGS).await;
    assert_eq!(
        out.goaway,
        Some(ENHANCE_YOUR_CALM),
        "no GOAWAY ENHANCE_YOUR_CALM after {FLOOD_FRAMES} SETTINGS ({} answered)",
        out.answered
    );
    assert!(
        out.answered <= MAX_ANSWERED,
        "{} SETTINGS acknowledged before the GOAWAY",
        out.answered
    );
    assert!(out.closed, "the connection is closed after the GOAWAY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pings_between_requests_keeps_its_connection() {
    let s = Scene::start().await;
    let (stream, _) = tls_connect(s.https, "app.test", &["h2"], &s.root())
        .await
        .expect("TLS");
    let (send, mut connection) = timed("h2 handshake", async {
        h2::client::handshake(stream)
            .await
            .map_err(std::io::Error::other)
    })
    .await
    .expect("handshake");
    let mut ping = connection.ping_pong().expect("ping handle");
    let driver = tokio::spawn(connection);
    // 400 requests with 3 PINGs after each: 1,200 PINGs in all, more than
    // the budget holds at once, earned back by the responses.
    for i in 0..400 {
        let request = http::Request::get("https://app.test/").body(()).unwrap();
        let mut ready = send.clone().ready().await.expect("ready");
        let (response, _) = ready.send_request(request, true).expect("send");
        let response = timed("response", async {
            response.await.map_err(std::io::Error::other)
        })
        .await
        .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("body");
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        for _ in 0..3 {
            timed("ping", async {
                ping.ping(h2::Ping::opaque())
                    .await
                    .map_err(std::io::Error::other)
            })
            .await
            .unwrap_or_else(|e| panic!("ping after request {i}: {e}"));
        }
    }
    assert!(!driver.is_finished(), "the connection is still open");
    driver.abort();
}
