//! Futures over [`RequestBuilder::send`] and [`RequestBuilder::fetch`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::client::{Error, FullResponse, RequestBuilder, RequestHandle, Response};
use crate::reactor::Ctx;

use super::bridge::{Bridge, reactor_gone};

/// What a request future and its callback share.
struct Slot<T> {
    result: Option<Result<T, Error>>,
    waker: Option<Waker>,
    /// The request's handle, once the reactor has issued it.
    handle: Option<RequestHandle>,
    /// The future was dropped: a request not yet issued is not issued.
    abandoned: bool,
}

/// Fills the slot; dropped unused (the callback or the job was dropped by a reactor going
/// away), it fills the slot with an error, so the future never hangs.
struct Filler<T> {
    /// Taken by `fill`; still there on drop means the result never came.
    slot: Option<Rc<RefCell<Slot<T>>>>,
}

impl<T> Filler<T> {
    fn fill(mut self, result: Result<T, Error>) {
        if let Some(slot) = self.slot.take() {
            put(&slot, result);
        }
    }
}

fn put<T>(slot: &RefCell<Slot<T>>, result: Result<T, Error>) {
    let waker = {
        let Ok(mut slot) = slot.try_borrow_mut() else {
            return;
        };
        if slot.abandoned {
            // Dropped here, on the reactor: a response dropped unread closes its connection.
            return;
        }
        slot.result = Some(result);
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Drop for Filler<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            put(&slot, Err(reactor_gone()));
        }
    }
}

/// The shared machinery of [`ResponseFuture`] and [`FetchFuture`].
/// Issues a future's request on the reactor: the builder and what to do with it.
type Start<T> = Box<dyn FnOnce(&mut Ctx, Filler<T>) -> RequestHandle>;

struct RequestFuture<T> {
    bridge: Bridge,
    /// What issues the request (the builder with it), until the first poll runs it.
    start: Option<Start<T>>,
    slot: Rc<RefCell<Slot<T>>>,
    /// The output was taken: dropping the future then cancels nothing (a response's body is
    /// still to be read through the response).
    done: bool,
}

impl<T: 'static> RequestFuture<T> {
    fn new(bridge: &Bridge, start: Start<T>) -> Self {
        RequestFuture {
            bridge: bridge.clone(),
            start: Some(start),
            slot: Rc::new(RefCell::new(Slot {
                result: None,
                waker: None,
                handle: None,
                abandoned: false,
            })),
            done: false,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut slot = self.slot.borrow_mut();
        if let Some(result) = slot.result.take() {
            self.done = true;
            return Poll::Ready(result);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        drop(slot);
        if let Some(start) = self.start.take() {
            let slot = self.slot.clone();
            // Made here, so that a job dropped unrun (the reactor went away) fills the slot.
            let filler = Filler {
                slot: Some(slot.clone()),
            };
            self.bridge.post(Box::new(move |ctx| {
                if slot.borrow().abandoned {
                    return;
                }
                let handle = start(ctx, filler);
                slot.borrow_mut().handle = Some(handle);
            }));
        }
        // A bridge whose reactor is gone dropped the job at once, filling the slot.
        let result = self.slot.borrow_mut().result.take();
        match result {
            Some(result) => {
                self.done = true;
                Poll::Ready(result)
            }
            None => Poll::Pending,
        }
    }
}

impl<T> Drop for RequestFuture<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let handle = {
            let Ok(mut slot) = self.slot.try_borrow_mut() else {
                return;
            };
            slot.abandoned = true;
            // A result already in the slot (a response not taken) is dropped with it.
            slot.result = None;
            if self.start.is_some() {
                return; // never issued
            }
            slot.handle.take()
        };
        // Cancelling needs a `Ctx`: on the reactor. No handle yet means the job that issues
        // the request has not run: it sees `abandoned` and issues nothing. A cancel reaching
        // a request that has finished meanwhile does nothing.
        if let Some(handle) = handle {
            self.bridge.post(Box::new(move |ctx| handle.cancel(ctx)));
        }
    }
}

/// A response head to come: the output of [`AsyncRequest::send_async`](super::AsyncRequest::send_async)
/// (see [`AsyncRequest`](super::AsyncRequest)). The request is issued when the future is first
/// polled; dropping the future cancels it (a response already arrived is dropped unread,
/// which closes its connection).
#[must_use = "a request future does nothing until polled"]
pub struct ResponseFuture(RequestFuture<Response>);

/// A whole response to come: the output of [`AsyncRequest::fetch_async`](super::AsyncRequest::fetch_async)
/// (see [`AsyncRequest`](super::AsyncRequest)). Issued when first polled; dropping the future
/// cancels the request.
#[must_use = "a request future does nothing until polled"]
pub struct FetchFuture(RequestFuture<FullResponse>);

impl ResponseFuture {
    pub(super) fn new(bridge: &Bridge, builder: RequestBuilder) -> Self {
        ResponseFuture(RequestFuture::new(
            bridge,
            Box::new(|ctx, filler| builder.send(ctx, move |_, result| filler.fill(result))),
        ))
    }
}

impl FetchFuture {
    /// The body is read into `buffer`'s allocation (an empty `Vec` for a plain fetch).
    pub(super) fn new(bridge: &Bridge, builder: RequestBuilder, buffer: Vec<u8>) -> Self {
        FetchFuture(RequestFuture::new(
            bridge,
            Box::new(|ctx, filler| {
                builder.fetch_into(ctx, buffer, move |_, result| filler.fill(result))
            }),
        ))
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll(cx)
    }
}

impl Future for FetchFuture {
    type Output = Result<FullResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("issued", &self.0.start.is_none())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FetchFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchFuture")
            .field("issued", &self.0.start.is_none())
            .finish_non_exhaustive()
    }
}
