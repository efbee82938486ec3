//! Copies of a pool at several places on the heap, used by turns.
//!
//! Where a pool sits changes its speed in a tight loop: when a slot shares
//! its address modulo 4 KiB with a buffer the loop writes, the CPU may hold
//! the slot's load behind that store (4K aliasing). On this project's
//! machine one placement or another ran up to 20% slower, for every
//! contender alike (seen with `setarch -R` and environments of different
//! sizes, which move the stack, and again with pools on the heap). A
//! benchmark that uses each contender from four places by turns measures the
//! code, not where the allocator happened to put it: the fastest batch is
//! the unaliased speed, and the median mixes the four.

use std::cell::Cell;

/// How many copies.
pub const PLACES: usize = 4;

/// `PLACES` copies of a value, each boxed after a spacer of its own size
/// (the spacers are kept, so the copies stay where they are).
pub struct Placed<P> {
    copies: [Box<P>; PLACES],
    _spacers: Vec<Vec<u8>>,
    turn: Cell<usize>,
}

impl<P> Placed<P> {
    /// Makes the copies, with spacers of 1, 1041, 2081 and 3121 bytes
    /// between them, so that they sit at different offsets modulo 4 KiB.
    pub fn new(make: impl Fn() -> P) -> Self {
        let mut spacers = Vec::new();
        let copies = std::array::from_fn(|i| {
            spacers.push(vec![0u8; 1 + 1040 * i]);
            Box::new(make())
        });
        Placed {
            copies,
            _spacers: spacers,
            turn: Cell::new(0),
        }
    }

    /// The next copy, by turns.
    #[allow(dead_code)]
    pub fn next(&self) -> &P {
        let turn = self.turn.get();
        self.turn.set(turn + 1);
        &self.copies[turn % PLACES]
    }

    /// Copy `i % PLACES`.
    #[allow(dead_code)]
    pub fn at(&self, i: usize) -> &P {
        &self.copies[i % PLACES]
    }
}
