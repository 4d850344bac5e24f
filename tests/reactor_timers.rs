//! Timers, messages and handler lifetimes.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::reactor::*;
use weft::reactor::Reactor;

const LIMIT: Duration = Duration::from_secs(5);

#[test]
fn timers_fire_in_deadline_order() {
    let mut reactor = Reactor::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    for (delay, name) in [(30, "c"), (10, "a"), (20, "b")] {
        let o = order.clone();
        reactor
            .ctx()
            .call_later(Duration::from_millis(delay), move |_| {
                o.borrow_mut().push(name)
            });
    }
    assert_eq!(reactor.ctx().timer_count(), 3);
    assert!(reactor.next_deadline().is_some());
    assert!(turn_until(&mut reactor, LIMIT, |_| order.borrow().len() == 3));
    assert_eq!(*order.borrow(), vec!["a", "b", "c"]);
    assert_eq!(reactor.ctx().timer_count(), 0);
    assert_eq!(reactor.next_deadline(), None);
}

#[test]
fn equal_deadlines_each_fire_once_in_creation_order() {
    let mut reactor = Reactor::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..5 {
        let o = order.clone();
        reactor
            .ctx()
            .call_later(Duration::from_millis(5), move |_| o.borrow_mut().push(i));
    }
    assert!(turn_until(&mut reactor, LIMIT, |_| order.borrow().len() == 5));
    turn_for(&mut reactor, Duration::from_millis(30));
    assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4]);
    assert_eq!(reactor.ctx().timer_count(), 0);
}

#[test]
fn cancel_before_and_after_firing() {
    let mut reactor = Reactor::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let f1 = fired.clone();
    let early = reactor
        .ctx()
        .call_later(Duration::from_millis(5), move |_| {
            f1.borrow_mut().push("early")
        });
    let f2 = fired.clone();
    let cancelled = reactor
        .ctx()
        .call_later(Duration::from_millis(5), move |_| {
            f2.borrow_mut().push("cancelled")
        });
    assert_eq!(reactor.ctx().timer_count(), 2);
    assert!(reactor.ctx().cancel_timer(cancelled));
    assert!(!reactor.ctx().cancel_timer(cancelled));
    assert_eq!(reactor.ctx().timer_count(), 1);
    assert!(turn_until(&mut reactor, LIMIT, |_| !fired
        .borrow()
        .is_empty()));
    turn_for(&mut reactor, Duration::from_millis(30));
    assert_eq!(*fired.borrow(), vec!["early"]);
    // Cancelling a timer that fired is a no-op.
    assert!(!reactor.ctx().cancel_timer(early));
    assert_eq!(reactor.ctx().timer_count(), 0);
}

#[test]
fn cancelling_the_earliest_timer_moves_the_deadline() {
    let mut reactor = Reactor::new().unwrap();
    let a = reactor.ctx().call_later(Duration::from_millis(10), |_| {});
    let _b = reactor.ctx().call_later(Duration::from_secs(10), |_| {});
    let first = reactor.next_deadline().unwrap();
    assert!(reactor.ctx().cancel_timer(a));
    let second = reactor.next_deadline().unwrap();
    assert!(second > first + Duration::from_secs(5));
}

#[test]
fn many_cancelled_timers_do_not_leak() {
    let mut reactor = Reactor::new().unwrap();
    let ids: Vec<_> = (0..1000)
        .map(|i| {
            reactor
                .ctx()
                .call_later(Duration::from_secs(100 + i), |_| {})
        })
        .collect();
    for id in ids {
        assert!(reactor.ctx().cancel_timer(id));
    }
    assert_eq!(reactor.ctx().timer_count(), 0);
    assert_eq!(reactor.next_deadline(), None);
}

#[test]
fn zero_delay_timer_set_from_a_timer_waits_for_the_next_turn() {
    let mut reactor = Reactor::new().unwrap();
    let count = Rc::new(RefCell::new(0u32));
    fn again(ctx: &mut weft::reactor::Ctx, count: Rc<RefCell<u32>>) {
        *count.borrow_mut() += 1;
        ctx.call_later(Duration::ZERO, move |ctx| again(ctx, count));
    }
    let c = count.clone();
    reactor
        .ctx()
        .call_later(Duration::ZERO, move |ctx| again(ctx, c));
    // Each turn fires the timers due at its start: no endless loop within one turn.
    reactor.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(*count.borrow(), 1);
    reactor.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(*count.borrow(), 2);
}

#[test]
fn set_timer_calls_the_handler_with_its_tag() {
    let mut reactor = Reactor::new().unwrap();
    let events = log();
    let h = reactor
        .ctx()
        .add_handler(LoggingProtocol::new(&events).boxed());
    reactor.ctx().set_timer(Duration::from_millis(20), h, 2);
    reactor.ctx().set_timer(Duration::from_millis(5), h, 1);
    let t3 = reactor.ctx().set_timer(Duration::from_millis(10), h, 3);
    assert!(reactor.ctx().cancel_timer(t3));
    assert!(turn_until(&mut reactor, LIMIT, |_| events.borrow().len() == 2));
    turn_for(&mut reactor, Duration::from_millis(30));
    assert_eq!(*events.borrow(), vec![Ev::Timer(1), Ev::Timer(2)]);
    assert_eq!(reactor.ctx().timer_count(), 0);
}

#[test]
fn removing_a_handler_cancels_its_timers() {
    let mut reactor = Reactor::new().unwrap();
    let events = log();
    let h = reactor
        .ctx()
        .add_handler(LoggingProtocol::new(&events).boxed());
    for tag in 0..100 {
        reactor.ctx().set_timer(Duration::from_millis(5), h, tag);
    }
    reactor.ctx().call_later(Duration::from_millis(5), |_| {});
    assert_eq!(reactor.ctx().timer_count(), 101);
    reactor.ctx().remove_handler(h);
    assert_eq!(reactor.ctx().timer_count(), 1);
    turn_for(&mut reactor, Duration::from_millis(30));
    assert!(events.borrow().is_empty());
    assert_eq!(reactor.ctx().timer_count(), 0);
}

/// Posts messages from inside callbacks; they arrive after the callback, in order.
#[test]
fn posted_messages_are_delivered_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let events = log();
    let h = reactor
        .ctx()
        .add_handler(LoggingProtocol::new(&events).boxed());
    reactor.ctx().post(h, Box::new("one".to_string()));
    reactor.ctx().post(h, Box::new("two".to_string()));
    reactor.ctx().post(h, Box::new(5u8));
    let seen_inside = Rc::new(RefCell::new(usize::MAX));
    let (e, s) = (events.clone(), seen_inside.clone());
    reactor.ctx().call_later(Duration::ZERO, move |ctx| {
        ctx.post(h, Box::new("three".to_string()));
        // Not delivered while the callback runs.
        *s.borrow_mut() = e.borrow().len();
    });
    reactor.turn(Some(Duration::ZERO)).unwrap();
    reactor.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(*seen_inside.borrow(), 3);
    assert_eq!(
        *events.borrow(),
        vec![
            Ev::Msg("one".into()),
            Ev::Msg("two".into()),
            Ev::Msg("<other>".into()),
            Ev::Msg("three".into())
        ]
    );
    // A message to a handler removed before delivery is dropped.
    reactor.ctx().post(h, Box::new("late".to_string()));
    reactor.ctx().remove_handler(h);
    reactor.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(events.borrow().len(), 4);
}

#[test]
fn a_handler_can_remove_itself_from_its_callback() {
    use weft::reactor::{Ctx, HandlerId, Protocol};
    struct SelfRemoving {
        me: Rc<RefCell<Option<HandlerId>>>,
        dropped: Rc<RefCell<bool>>,
    }
    impl Protocol for SelfRemoving {
        fn data_received(&mut self, _: &mut Ctx, _: weft::reactor::ConnId, _: &[u8]) {}
        fn message(&mut self, ctx: &mut Ctx, _: Box<dyn std::any::Any>) {
            let me = self.me.borrow().unwrap();
            ctx.remove_handler(me);
            // A second message to ourselves is dropped with us.
            ctx.post(me, Box::new(()));
        }
    }
    impl Drop for SelfRemoving {
        fn drop(&mut self) {
            *self.dropped.borrow_mut() = true;
        }
    }
    let mut reactor = Reactor::new().unwrap();
    let me = Rc::new(RefCell::new(None));
    let dropped = Rc::new(RefCell::new(false));
    let h = reactor.ctx().add_handler(Box::new(SelfRemoving {
        me: me.clone(),
        dropped: dropped.clone(),
    }));
    *me.borrow_mut() = Some(h);
    reactor.ctx().post(h, Box::new(()));
    reactor.turn(Some(Duration::ZERO)).unwrap();
    assert!(*dropped.borrow());
}

#[test]
fn run_with_a_stop_timer() {
    let mut reactor = Reactor::new().unwrap();
    let started = Instant::now();
    reactor
        .ctx()
        .call_later(Duration::from_millis(50), |ctx| ctx.stop());
    reactor.run().unwrap();
    assert!(reactor.is_stopped());
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(45), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn turn_waits_no_longer_than_the_next_timer() {
    let mut reactor = Reactor::new().unwrap();
    let fired = Rc::new(RefCell::new(false));
    let f = fired.clone();
    reactor
        .ctx()
        .call_later(Duration::from_millis(30), move |_| *f.borrow_mut() = true);
    let started = Instant::now();
    while !*fired.borrow() && started.elapsed() < LIMIT {
        reactor.turn(Some(Duration::from_secs(5))).unwrap();
    }
    assert!(*fired.borrow());
    assert!(started.elapsed() < Duration::from_secs(1));
}
