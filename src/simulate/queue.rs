//! The discrete-event queue: events ordered by simulated time, and events due at the same
//! millisecond in the order they were scheduled (so a run is reproducible).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Millis;

pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(Millis, u64)>>,
    events: std::collections::HashMap<u64, E>,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            events: std::collections::HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Millis, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((at, seq)));
        self.events.insert(seq, event);
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(Millis, E)> {
        let Reverse((at, seq)) = self.heap.pop()?;
        let event = self.events.remove(&seq)?;
        Some((at, event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_the_order_they_went_in() {
        let mut q = EventQueue::default();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        assert_eq!(q.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [(10, "a1"), (10, "a2"), (20, "b"), (30, "c")]);
        assert!(q.is_empty());
    }
}
