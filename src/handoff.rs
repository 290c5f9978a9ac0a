//! A bounded queue that hands items from threads to threads: what a
//! batch needs of `std::sync::mpsc`, whose channels added 17.6 KiB to the
//! binary (a mutex and a condition variable are already in it).
//!
//! Either side may close it: pushes are then refused, and pops return
//! what is still queued, then `None`. Waiting is for room (a push) or an
//! item (a pop), never after a close.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Items of `T` on their way from one thread to others (or back), at most
/// `bound` of them at once.
pub struct Handoff<T> {
    queue: Mutex<Queue<T>>,
    /// Signalled on a push (one waiter) or a close (all).
    item: Condvar,
    /// Signalled on a pop (one waiter) or a close (all).
    room: Condvar,
    bound: usize,
}

struct Queue<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Threads waiting for an item, and for room: only then is its
    /// condition signalled (a signal is a system call), and one waiter,
    /// not every one (several threads may wait for items: a batch's
    /// unlinkers).
    waiting_items: usize,
    waiting_room: usize,
}

/// Which of a queue's waiter counts: for items, or for room.
type Waiters<T> = fn(&mut Queue<T>) -> &mut usize;

impl<T> Handoff<T> {
    /// An open, empty queue holding at most `bound` items (at least one).
    pub fn new(bound: usize) -> Handoff<T> {
        Handoff {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(bound.max(1)),
                closed: false,
                waiting_items: 0,
                waiting_room: 0,
            }),
            item: Condvar::new(),
            room: Condvar::new(),
            bound: bound.max(1),
        }
    }

    /// Queues `item`, waiting for room; gives it back once closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut queue = self.lock();
        while !queue.closed && queue.items.len() >= self.bound {
            queue = self.wait(queue, &self.room, |q| &mut q.waiting_room);
        }
        if queue.closed {
            return Err(item);
        }
        queue.items.push_back(item);
        let anyone_waiting = queue.waiting_items > 0;
        self.wake_one(queue, &self.item, anyone_waiting);
        Ok(())
    }

    /// The oldest item, waiting for one; `None` once closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut queue = self.lock();
        while !queue.closed && queue.items.is_empty() {
            queue = self.wait(queue, &self.item, |q| &mut q.waiting_items);
        }
        let item = queue.items.pop_front();
        let anyone_waiting = item.is_some() && queue.waiting_room > 0;
        self.wake_one(queue, &self.room, anyone_waiting);
        item
    }

    /// Refuses every later push and ends every wait.
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        drop(queue);
        self.item.notify_all();
        self.room.notify_all();
    }

    /// Lets the lock go, then wakes one thread waiting on `changed` when
    /// `anyone_waiting`. Woken while the lock is still held, a waiter
    /// would first block on it (two more `futex` calls, and how many
    /// depends on how the threads meet); a wait began under the lock, so
    /// a wake after it is never missed.
    #[inline(always)]
    fn wake_one(&self, queue: MutexGuard<'_, Queue<T>>, changed: &Condvar, anyone_waiting: bool) {
        drop(queue);
        if anyone_waiting {
            changed.notify_one();
        }
    }

    // A panic while the lock was held (none of the code above can) leaves
    // the queue as consistent as any other moment: poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits on `changed`, counted meanwhile among the waiters `waiting`
    /// picks.
    #[inline(always)]
    fn wait<'a>(
        &self,
        mut queue: MutexGuard<'a, Queue<T>>,
        changed: &Condvar,
        waiting: Waiters<T>,
    ) -> MutexGuard<'a, Queue<T>> {
        *waiting(&mut queue) += 1;
        let mut queue = changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
        *waiting(&mut queue) -= 1;
        queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_and_a_close_ends_the_waits() {
        let jobs = Handoff::new(2);
        let done = Handoff::new(1);
        let sum = std::thread::scope(|scope| {
            scope.spawn(|| {
                while let Some(n) = jobs.pop() {
                    if done.push(n * 2).is_err() {
                        break;
                    }
                }
                done.close();
            });
            // At most two items out at once (one waiting, one in the
            // worker's hands), as its users keep them: more, and both
            // sides could wait for room at once.
            let mut got = Vec::new();
            for n in 0..100u64 {
                assert!(jobs.push(n).is_ok());
                if n >= 1 {
                    got.push(done.pop().unwrap());
                }
            }
            jobs.close();
            assert_eq!(jobs.push(7), Err(7), "a closed queue refuses");
            while let Some(n) = done.pop() {
                got.push(n);
            }
            got
        });
        assert_eq!(sum, (0..100u64).map(|n| n * 2).collect::<Vec<_>>());
    }

    /// Several threads taking items (and giving results back on a queue
    /// of their own): every item is taken once, none waits while one is
    /// queued (a waiter is woken for each item), and the close ends them.
    #[test]
    fn several_takers_get_every_item_once() {
        let jobs = Handoff::new(3);
        let done = Handoff::new(8);
        let mut got = std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    while let Some(n) = jobs.pop() {
                        if done.push(n).is_err() {
                            break;
                        }
                    }
                });
            }
            let mut got = Vec::new();
            for n in 0..1000u32 {
                assert!(jobs.push(n).is_ok());
                if n >= 2 {
                    got.push(done.pop().unwrap());
                }
            }
            jobs.close();
            while got.len() < 1000 {
                got.push(done.pop().unwrap());
            }
            got
        });
        got.sort_unstable();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_closed_queue_still_gives_what_it_holds() {
        let queue = Handoff::new(3);
        queue.push('a').unwrap();
        queue.push('b').unwrap();
        queue.close();
        assert_eq!(queue.pop(), Some('a'));
        assert_eq!(queue.pop(), Some('b'));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_full_queue_waits_for_room() {
        let queue = Handoff::new(1);
        std::thread::scope(|scope| {
            queue.push(1).unwrap();
            let pusher = scope.spawn(|| queue.push(2));
            // Time for a push that did not wait to show.
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(queue.lock().items.len(), 1, "a push past the bound");
            assert_eq!(queue.pop(), Some(1));
            assert_eq!(pusher.join().unwrap(), Ok(()));
            assert_eq!(queue.pop(), Some(2));
        });
    }
}
