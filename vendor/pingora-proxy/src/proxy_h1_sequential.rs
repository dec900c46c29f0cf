// greenlight patch: this whole file (see vendor/README.md, "Downstream
// request path (issue #15)").
//
// A request with no body to send is written to an HTTP/1 upstream and
// answered in one sequential exchange, in the request's own future: Pingora's
// `proxy_1to1` runs two halves joined by two channels for every request
// (a copy of nothing to stream, two `mpsc` channels, an `Arc` for the pipe
// state and another for the write gate, a `try_join!`, a random `select!` on
// each turn), which is what a streaming body or an upgrade needs, not a GET.
//
// What the pipe did is kept, step by step:
// - the end of the (empty) body goes through the request body filters and
//   `finish_body` upstream, as the downstream half sent it;
// - while the answer is awaited the client is watched with
//   `read_body_or_idle(true)`, as the downstream half did: a client that
//   closes aborts the request, and pipelined bytes are stashed for the next
//   request;
// - each upstream task goes through the same response filters
//   (`filter_upstream_tasks`) and `write_response_tasks`;
// - a small response's header waits for its body when that is already read
//   (`write_gate::header_may_share`), so both go out in one write;
// - the response streams: one piece is read, written, then the next; while
//   a write waits for the client the idle read buffer is let go (what the
//   write gate did for the pipe);
// - the upstream connection is reused only when its response was read to
//   its end and the request was written whole.

use super::*;
use crate::proxy_cache::{range_filter::RangeBodyFilter, ServeFromCache};
use crate::proxy_common::*;
use crate::proxy_h1::send_body_to1;

impl<SV, C> HttpProxy<SV, C>
where
    C: custom::Connector,
{
    /// Whether `proxy_1to1` may take the sequential exchange for this request,
    /// whose header (not an upgrade) is already written upstream: no body to
    /// send, no prepared body, no cache, an HTTP/1 or HTTP/2 client.
    pub(crate) fn sequential_exchange_fits(session: &mut Session, upgrade_req: bool) -> bool {
        !upgrade_req
            && session.prepared_body.is_none()
            && !session.cache.enabled()
            && !session.cache.bypassing()
            && !session.downstream_session.is_custom()
            && !session.downstream_session.is_subrequest()
            && session.is_body_empty()
    }

    /// The sequential exchange (see the top of this file). Returns whether
    /// the client connection and the upstream connection may be reused.
    pub(crate) async fn proxy_1to1_sequential(
        &self,
        session: &mut Session,
        client_session: &mut HttpSessionV1,
        ctx: &mut SV::CTX,
    ) -> Result<(bool, bool)>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        let mut upstream_can_reuse = true;
        let mut send_error = None;

        // The end of the empty body, as the pipe's downstream half sent it.
        let (task, _) = self.filter_request_body(session, None, true, ctx).await?;
        if let Err(e) = send_body_to1(client_session, task).await {
            // As the pipe's upstream half: the answer may still come.
            warn!("send error, draining read buf: {e}");
            upstream_can_reuse = false;
            send_error = Some(e);
        }

        let mut serve_from_cache = ServeFromCache::new();
        let mut range_body_filter = RangeBodyFilter::new();
        let mut response_state = ResponseStateMachine::new();
        let mut watch_client = true;
        loop {
            let read = tokio::select! {
                biased;
                res = client_session.read_response_task() => res,
                res = session.downstream_session.read_body_or_idle(true), if watch_client => {
                    match res {
                        // The client went away (or sent bytes where none may be).
                        Err(e) => return Err(e.into_down()),
                        Ok(_) => {
                            watch_client = false;
                            continue;
                        }
                    }
                }
            };
            let mut tasks = Vec::with_capacity(2);
            let mut end = true;
            match read {
                Ok(task) => {
                    end = task.is_end();
                    let share = !end
                        && matches!(&task, HttpTask::Header(h, _) if crate::write_gate::header_may_share(h));
                    tasks.push(task);
                    if share {
                        // Its body, if already read along with the header:
                        // both go out in one write. A read that would wait is
                        // dropped before it took anything (as `drain_ready`).
                        let next = tokio::task::unconstrained(client_session.read_response_task())
                            .now_or_never();
                        match next {
                            Some(Ok(task)) => {
                                end = task.is_end();
                                tasks.push(task);
                            }
                            Some(Err(e)) => {
                                end = true;
                                upstream_can_reuse = false;
                                tasks.push(HttpTask::Failed(e.into_up()));
                            }
                            None => {}
                        }
                    }
                }
                // A response read error: the connection cannot be reused and
                // the error goes to the client side through the filters, as
                // the pipe's `Failed` task did.
                Err(e) => {
                    upstream_can_reuse = false;
                    tasks.push(HttpTask::Failed(send_error.take().unwrap_or(e).into_up()));
                }
            }

            let Some(tasks) = self
                .filter_upstream_tasks(
                    session,
                    ctx,
                    tasks,
                    &mut serve_from_cache,
                    &mut range_body_filter,
                    &mut response_state,
                )
                .await?
            else {
                if end {
                    break;
                }
                continue;
            };

            // While the write waits for the client, the upstream read buffer
            // holds nothing to keep: let it go (slow readers, vendor/README.md).
            let mut write = std::pin::pin!(session.write_response_tasks(tasks));
            let mut released = false;
            let response_done = poll_fn(|cx| {
                let polled = write.as_mut().poll(cx);
                if polled.is_pending() && !released {
                    released = true;
                    client_session.release_idle_body_buf();
                }
                polled
            })
            .await?;

            if end || response_done {
                // A response the client side ended before the upstream's end
                // leaves unread bytes on the upstream connection.
                upstream_can_reuse &= end;
                break;
            }
        }

        let mut reuse_downstream = true;
        if let Err(e) = session.as_mut().finish_body().await {
            error!("Error finish sending body to downstream: {}", e);
            reuse_downstream = false;
        }
        Ok((reuse_downstream, upstream_can_reuse))
    }
}
