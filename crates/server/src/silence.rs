//! Deadlines for silence: how long the other side may send nothing. One mechanism for the
//! upstream's response bodies (`gateway::upstream::IdleLimited`) and the clients' request
//! bodies ([`SilenceLimited`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A deadline `limit` after the last part that arrived. A part only notes its time; the timer
/// is moved when it fires before the real deadline, not on every part (moving it re-files it
/// in the runtime's timer wheel: as costly per event of a stream as everything else the
/// gateway does to the event).
pub struct Silence {
    limit: Duration,
    /// The timer, and when the last part arrived (or the wait began).
    armed: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl Silence {
    /// Not armed yet: the first [`Silence::expired`] arms it.
    pub fn new(limit: Duration) -> Self {
        Self { limit, armed: None }
    }

    /// Counting from now, with a timer already armed for a deadline no later than `limit`
    /// from now (it is moved on when it fires early).
    pub fn armed(limit: Duration, timer: Pin<Box<Sleep>>) -> Self {
        Self {
            limit,
            armed: Some((timer, Instant::now())),
        }
    }

    /// A part arrived: the deadline moves to `limit` from now.
    pub fn part(&mut self) {
        if let Some((_, last)) = &mut self.armed {
            *last = Instant::now();
        }
    }

    /// Whether the deadline has passed, for a wait that is not over (arming the timer, and
    /// registering `cx` to be woken at the deadline, if it has not).
    pub fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let (timer, last) = self
            .armed
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(limit)), Instant::now()));
        while timer.as_mut().poll(cx).is_ready() {
            let deadline = *last + limit;
            if Instant::now() >= deadline {
                return true;
            }
            // Parts came since it was armed: wait for the real deadline.
            timer.as_mut().reset(deadline);
        }
        false
    }
}

/// Why a request body ended early: the client sent nothing for the client timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of the request body for the client timeout")]
pub struct ClientTimedOut;

/// Whether `e`, or one of its causes, is [`ClientTimedOut`].
pub fn client_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<ClientTimedOut>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request body that fails with [`ClientTimedOut`] when the client keeps it waiting longer
/// than `limit` for its next part (as nginx's `client_body_timeout`). The timer is armed the
/// first time the body is not ready, so a body that came with its head (the usual JSON
/// request) costs no timer.
pub struct SilenceLimited<B> {
    inner: B,
    silence: Silence,
}

impl<B> SilenceLimited<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            silence: Silence::new(limit),
        }
    }
}

impl<B> hyper::body::Body for SilenceLimited<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, axum::BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.silence.part();
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.silence.expired(cx) {
            return Poll::Ready(Some(Err(Box::new(ClientTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
