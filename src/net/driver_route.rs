//! quinn's runtime for a server endpoint: tokio, except that a connection's driver (the task
//! that processes its packets and timers) can be moved to another tokio runtime once the
//! connection's protocol is known. The admin API moves its connections' drivers to its own
//! thread, so that an administrator's packets are not processed behind thousands of device
//! connections' work.
//!
//! quinn spawns a connection's driver inside `Incoming::accept`, synchronously; the spawn
//! leaves the driver's [`DriverRoute`] on the calling thread, where [`take_last_route`] picks
//! it up right after the accept.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    static LAST: RefCell<Option<DriverRoute>> = const { RefCell::new(None) };
}

/// The route of the driver spawned last on this thread, if not taken yet.
pub fn take_last_route() -> Option<DriverRoute> {
    LAST.with(|last| last.borrow_mut().take())
}

/// Where one connection's driver runs.
#[derive(Clone, Default)]
pub struct DriverRoute(Arc<Mutex<Route>>);

#[derive(Default)]
struct Route {
    /// The runtime to move to, until the driver has moved.
    to: Option<tokio::runtime::Handle>,
    /// The driver's task as last polled, woken to make the move at once.
    waker: Option<Waker>,
}

impl DriverRoute {
    /// Moves the driver to `runtime`; it moves the next time it is polled, which this causes.
    pub fn move_to(&self, runtime: tokio::runtime::Handle) {
        let mut route = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        route.to = Some(runtime);
        if let Some(waker) = route.waker.take() {
            waker.wake();
        }
    }
}

/// A driver that may move: polled where it was spawned until asked to move, then spawned on
/// the other runtime and done here.
struct Routed {
    driver: Option<Driver>,
    route: DriverRoute,
}

impl Future for Routed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let to = {
            let mut route = self.route.0.lock().unwrap_or_else(PoisonError::into_inner);
            let to = route.to.take();
            if to.is_none() {
                route.waker = Some(cx.waker().clone());
            }
            to
        };
        let Some(driver) = self.driver.as_mut() else {
            return Poll::Ready(());
        };
        match to {
            None => driver.as_mut().poll(cx),
            Some(runtime) => {
                // Its first poll there registers the new task's waker with the connection.
                if let Some(driver) = self.driver.take() {
                    drop(runtime.spawn(driver));
                }
                Poll::Ready(())
            }
        }
    }
}

/// tokio, with movable connection drivers (see the module comment).
#[derive(Debug)]
pub struct RoutedRuntime;

impl quinn::Runtime for RoutedRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        quinn::TokioRuntime.new_timer(at)
    }

    fn spawn(&self, future: Driver) {
        let route = DriverRoute::default();
        LAST.with(|last| *last.borrow_mut() = Some(route.clone()));
        tokio::spawn(Routed {
            driver: Some(future),
            route,
        });
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        quinn::TokioRuntime.wrap_udp_socket(socket)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn runtime(name: &str) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_driver_moved_to_another_runtime_is_polled_there_from_then_on() {
        let (a, b) = (runtime("route-a"), runtime("route-b"));
        let (polled_on, polls) = mpsc::channel();
        // A driver that says where each of its polls runs and waits to be woken: one message
        // per poll (an async loop could go round several times in one poll, which a loaded
        // machine shows as polls that never were).
        let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
        let slot = waker.clone();
        let driver = std::future::poll_fn(move |cx| {
            *slot.lock().unwrap() = Some(cx.waker().clone());
            let thread = std::thread::current().name().map(String::from);
            let _ = polled_on.send(thread);
            Poll::<()>::Pending
        });
        let wake = || {
            if let Some(waker) = waker.lock().unwrap().take() {
                waker.wake();
            }
        };
        let route = a.block_on(async move {
            quinn::Runtime::spawn(&RoutedRuntime, Box::pin(driver));
            take_last_route()
        });
        let route = route.expect("the spawn leaves its route on this thread");
        assert_eq!(take_last_route().map(|_| ()), None, "taken once");
        let next = || polls.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(next().as_deref(), Some("route-a"));

        // The move wakes the driver's task, whose next poll spawns it on route-b: from then
        // on every poll is there, and none is lost.
        route.move_to(b.handle().clone());
        assert_eq!(
            next().as_deref(),
            Some("route-b"),
            "the move itself polls it there"
        );
        for _ in 0..3 {
            wake();
            assert_eq!(next().as_deref(), Some("route-b"));
        }
        assert!(
            polls.recv_timeout(Duration::from_millis(100)).is_err(),
            "no extra poll"
        );
    }
}
