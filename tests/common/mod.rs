//! Helpers shared by the integration tests: a value type that counts its
//! creations and drops and notices when two guards hold it at once.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;

/// A number for each guard a test takes, so a value can record its holder.
pub fn next_guard() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, SeqCst)
}

/// Counts shared by every `Tracked` value of one test.
#[derive(Debug, Default)]
pub struct Ledger {
    pub created: AtomicUsize,
    pub dropped: AtomicUsize,
    /// Set if a value is ever entered by a second user while in use.
    pub double_use: AtomicBool,
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }

    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }

    pub fn make(self: &Arc<Self>) -> Tracked {
        let id = self.created.fetch_add(1, SeqCst);
        Tracked {
            id,
            ledger: Arc::clone(self),
            holder: AtomicU64::new(0),
        }
    }
}

/// A value that knows its ledger and which guard holds it now (0: none).
#[derive(Debug)]
pub struct Tracked {
    pub id: usize,
    ledger: Arc<Ledger>,
    holder: AtomicU64,
}

impl Tracked {
    /// Records that `guard` holds the value until `release`; records a
    /// double use if another guard holds it.
    pub fn hold(&self, guard: u64) {
        if self.holder.swap(guard, SeqCst) != 0 {
            self.ledger.double_use.store(true, SeqCst);
        }
    }

    /// Ends `guard`'s hold; records a double use if another guard took the
    /// value in the meantime.
    pub fn release(&self, guard: u64) {
        if self
            .holder
            .compare_exchange(guard, 0, SeqCst, SeqCst)
            .is_err()
        {
            self.ledger.double_use.store(true, SeqCst);
        }
    }

    /// Holds the value for the duration of `f`, under a fresh guard number.
    pub fn use_for<R>(&self, f: impl FnOnce() -> R) -> R {
        let guard = next_guard();
        self.hold(guard);
        let r = f();
        self.release(guard);
        r
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if *self.holder.get_mut() != 0 {
            self.ledger.double_use.store(true, SeqCst);
        }
        self.ledger.dropped.fetch_add(1, SeqCst);
    }
}

/// Runs `$body` once for each built-in spill strategy, with `$spill` bound to
/// a fresh instance of it (and `$name` to its name, for messages).
#[macro_export]
macro_rules! for_each_spill {
    (|$name:ident, $spill:ident| $body:block) => {{
        {
            let $name = "Mutex";
            let $spill = mempool::spill::Mutex::default();
            $body
        }
        {
            let $name = "LockFree";
            let $spill = mempool::spill::LockFree::default();
            $body
        }
        {
            let $name = "Bounded";
            let $spill = mempool::spill::Bounded::new(16);
            $body
        }
        {
            let $name = "None";
            let $spill = mempool::spill::None;
            $body
        }
        {
            let $name = "PerThread";
            let $spill = mempool::spill::PerThread::default();
            $body
        }
    }};
}

/// Keeps test output readable: hides the message of every panic whose text
/// says "(on purpose)", and lets every other panic print as usual. Installed
/// once per test binary.
pub fn silence_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !text.is_some_and(|t| t.contains("(on purpose)")) {
                default(info);
            }
        }));
    });
}

/// A `Stats` with the given fields set and the rest 0 (`Stats` is
/// `#[non_exhaustive]`, so no struct literal outside the crate).
#[macro_export]
macro_rules! stats {
    ($($field:ident: $value:expr),* $(,)?) => {{
        let mut s = mempool::Stats::default();
        $(s.$field = $value;)*
        s
    }};
}

/// The two identities `mempool::Stats` documents, for a pool no thread is
/// using.
#[track_caller]
pub fn check_invariants(s: &mempool::Stats) {
    check_identities(s, "");
}

/// [`check_invariants`], with `what` in the failure message.
#[track_caller]
pub fn check_identities(s: &mempool::Stats, what: &str) {
    assert_eq!(
        s.creates + s.puts,
        s.idle as u64 + s.in_use + s.discarded + s.rejected + s.decayed + s.trimmed + s.taken,
        "{what}: creates + puts == idle + in_use + discarded + rejected + decayed + trimmed + taken: {s}"
    );
    assert_eq!(
        s.gets + s.puts,
        s.returns + s.taken + s.in_use,
        "{what}: gets + puts == returns + taken + in_use: {s}"
    );
}

/// Runs its closures when the thread's thread-locals are destroyed.
pub struct AtExit(std::cell::RefCell<Vec<Box<dyn FnOnce()>>>);

impl Drop for AtExit {
    fn drop(&mut self) {
        for f in self.0.take() {
            f();
        }
    }
}

thread_local! {
    /// For destructors registered before the pool's own per-thread state.
    pub static EARLY: AtExit = const { AtExit(std::cell::RefCell::new(Vec::new())) };
    /// For destructors registered after it.
    pub static LATE: AtExit = const { AtExit(std::cell::RefCell::new(Vec::new())) };
}

/// Runs `f` when `key` is destroyed at thread exit.
pub fn at_exit(key: &'static std::thread::LocalKey<AtExit>, f: impl FnOnce() + 'static) {
    key.with(|a| a.0.borrow_mut().push(Box::new(f)));
}

/// Whether a guard's value lives in a slot (the owner slot, or a slot of
/// the thread's pocket with `PerThread`), from its `Debug` output.
pub fn from_a_slot(guard: &impl std::fmt::Debug) -> bool {
    let shown = format!("{guard:?}");
    shown.contains("owner slot") || shown.contains("pocket")
}

/// A loop count, a tenth of it under valgrind (where `.ci/run` sets
/// `MEMPOOL_STRESS_CYCLES` and threads run one at a time, 50 times slower).
pub fn scaled(n: usize) -> usize {
    shrunk_under_valgrind(n, 10)
}

/// A loop count for the longest stress loops: a fiftieth of it under
/// valgrind.
pub fn heavy(n: usize) -> usize {
    shrunk_under_valgrind(n, 50)
}

fn shrunk_under_valgrind(n: usize, divisor: usize) -> usize {
    if under_valgrind() {
        (n / divisor).max(1)
    } else {
        n
    }
}

/// Runs `f` on a thread of its own and fails if it does not end in time (a
/// re-entrant call that never ends must fail, not hang); a panic in `f`
/// goes on.
pub fn within<R: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(r) => {
            handle.join().unwrap();
            r
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(handle.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not end within {secs} s"),
    }
}

/// A value whose `Drop` runs a hook set once the pool exists (so the hook
/// can use the pool its value lives in).
pub struct OnDrop {
    pub t: Tracked,
    pub hook: Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for OnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDrop")
            .field("t", &self.t.id)
            .finish_non_exhaustive()
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(hook) = self.hook.get() {
            hook();
        }
    }
}

/// The `create` hook of a pool of [`Tracked`] values, boxed so that the
/// pool's type can be named.
pub type Create = Box<dyn Fn() -> Tracked + Send + Sync>;

/// A pool of [`Tracked`] values with stats, `PerThread` unless said.
pub type TrackedPool<S = mempool::spill::PerThread<Tracked>> =
    mempool::Pool<Tracked, Create, mempool::NoReset, S, mempool::StatsCounters>;

/// A pool of `ledger`'s values, with `spill` and stats.
pub fn tracked_with<S: mempool::Spill<Tracked>>(
    ledger: &Arc<Ledger>,
    spill: S,
) -> Arc<TrackedPool<S>> {
    let l = Arc::clone(ledger);
    Arc::new(
        mempool::Pool::builder()
            .create(Box::new(move || l.make()) as Create)
            .spill(spill)
            .stats()
            .build(),
    )
}

/// A pool of `ledger`'s values, with the default strategy and stats.
pub fn tracked_pool(ledger: &Arc<Ledger>) -> Arc<TrackedPool> {
    tracked_with(ledger, mempool::spill::PerThread::default())
}

/// The checks an attack test ends with, for a pool no thread uses any more:
/// no value held twice, the stats identities, nothing in use, every value
/// idle or dropped; then the pool is dropped and every value must be too.
#[track_caller]
pub fn settle<T, C, R, S, M>(
    what: &str,
    ledger: &Arc<Ledger>,
    pool: Arc<mempool::Pool<T, C, R, S, M>>,
) where
    C: Fn() -> T,
    R: mempool::Reset<T>,
    S: mempool::Spill<T>,
    M: mempool::StatsLayer,
{
    assert!(
        !ledger.double_use.load(SeqCst),
        "{what}: a value held twice"
    );
    if let Some(s) = pool.stats() {
        check_identities(&s, what);
        assert_eq!(s.in_use, 0, "{what}: {s}");
    }
    assert_eq!(
        ledger.created(),
        ledger.dropped() + pool.idle(),
        "{what}: created == dropped + idle"
    );
    assert_eq!(
        Arc::strong_count(&pool),
        1,
        "{what}: the pool is still shared"
    );
    drop(pool);
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "{what}: every value dropped once with the pool"
    );
}

/// A pool of [`Tracked`] values whose hooks do what a test's [`Knobs`] say.
pub type Hooked =
    mempool::BoxedPool<Tracked, mempool::spill::PerThread<Tracked>, mempool::StatsCounters>;

/// What a [`hooked_pool`]'s hooks do, switched by the test.
#[derive(Default)]
pub struct Knobs {
    /// Persistent: `reset` uses the pool.
    pub reenter_in_reset: AtomicBool,
    /// Persistent: `retain` uses the pool.
    pub reenter_in_retain: AtomicBool,
    /// One-shot failures.
    pub reset_panics: AtomicBool,
    pub retain_panics: AtomicBool,
    pub retain_refuses: AtomicBool,
    /// How many times a hook used the pool.
    pub reentered: AtomicUsize,
}

/// Takes a one-shot knob: true once after it was set.
pub fn fire(flag: &AtomicBool) -> bool {
    flag.swap(false, SeqCst)
}

/// A pool of `ledger`'s values whose `reset` and `retain` panic, refuse or
/// call `reenter` (which uses the pool) as `knobs` say. Both hooks hold the
/// value being returned while they run, so that the ledger records a double
/// use if the pool hands it out (or trims it) meanwhile.
pub fn hooked_pool(
    ledger: &Arc<Ledger>,
    knobs: &Arc<Knobs>,
    reenter: fn(&Hooked, &Knobs),
) -> Arc<Hooked> {
    let shared: Arc<OnceLock<Weak<Hooked>>> = Arc::new(OnceLock::new());
    let (s1, s2) = (Arc::clone(&shared), Arc::clone(&shared));
    let (k1, k2) = (Arc::clone(knobs), Arc::clone(knobs));
    let l = Arc::clone(ledger);
    let pool = Arc::new(
        mempool::Pool::builder()
            .create(move || l.make())
            .reset(move |v: &mut Tracked| {
                // The value being returned is held by its hooks: if the pool
                // handed it out (or trimmed it) meanwhile, the ledger says so.
                let gid = next_guard();
                v.hold(gid);
                if fire(&k1.reset_panics) {
                    v.release(gid);
                    panic!("reset panicked (on purpose)");
                }
                if k1.reenter_in_reset.load(SeqCst) {
                    if let Some(pool) = s1.get().and_then(Weak::upgrade) {
                        reenter(&pool, &k1);
                    }
                }
                v.release(gid);
            })
            .retain(move |v: &Tracked| {
                let gid = next_guard();
                v.hold(gid);
                if fire(&k2.retain_panics) {
                    v.release(gid);
                    panic!("retain panicked (on purpose)");
                }
                if k2.reenter_in_retain.load(SeqCst) {
                    if let Some(pool) = s2.get().and_then(Weak::upgrade) {
                        reenter(&pool, &k2);
                    }
                }
                v.release(gid);
                !fire(&k2.retain_refuses)
            })
            .stats()
            .build_boxed(),
    );
    shared.set(Arc::downgrade(&pool)).unwrap();
    pool
}

/// Whether the tests run under valgrind (`.ci/run` sets
/// `MEMPOOL_STRESS_CYCLES` there), where threads run one at a time, so that
/// a thread spinning for another waits for a thread switch.
pub fn under_valgrind() -> bool {
    std::env::var_os("MEMPOOL_STRESS_CYCLES").is_some()
}

// ---------------------------------------------------------------------------
// Where a guard's value lives.
// ---------------------------------------------------------------------------

pub const OWNER: &str = "owner slot";
pub const POCKET: &str = "pocket";
pub const SPILL: &str = "spill";

/// Where a guard's value lives, from its `Debug`: "owner slot", "pocket" or
/// "spill".
pub fn from(guard: &impl std::fmt::Debug) -> &'static str {
    let shown = format!("{guard:?}");
    for place in [OWNER, POCKET, SPILL] {
        if shown.ends_with(&format!("from: \"{place}\" }}")) {
            assert_eq!(from_a_slot(guard), place != SPILL, "{shown}");
            return place;
        }
    }
    panic!("a guard from nowhere: {shown}")
}

/// Whether a guard's value lives in a slot of a pocket: a thread's, or the
/// owner slots, which are a pocket too (from its `Debug`).
pub fn in_pocket(guard: &impl std::fmt::Debug) -> bool {
    from_a_slot(guard)
}

/// Whether a guard's value lives in a thread's pocket, not the owner slots.
pub fn in_a_thread_pocket(guard: &impl std::fmt::Debug) -> bool {
    format!("{guard:?}").contains("\"pocket\"")
}

/// Makes a thread that exits at once the pool's owner, and takes its value
/// out of the pool: the owner slots stay empty for good, so every thread of
/// the test uses its pocket, as every thread but a pool's first does. The
/// pool's stats count one get, one create and one take.
pub fn owner_gone<T, C, R, S, M>(pool: &mempool::Pool<T, C, R, S, M>)
where
    mempool::Pool<T, C, R, S, M>: Sync,
    C: Fn() -> T,
    R: mempool::Reset<T>,
    S: mempool::Spill<T>,
    M: mempool::StatsLayer,
{
    std::thread::scope(|s| {
        s.spawn(|| drop(mempool::PoolGuard::take(pool.get())));
    });
}

// ---------------------------------------------------------------------------
// A thread's `ThreadSlots` index, and a new thread that inherits it.
// ---------------------------------------------------------------------------

/// A probe that tells which `ThreadSlots` index the calling thread holds: the
/// address of its slot in a `ThreadSlots` of the tests' own. The index is
/// the same in every `ThreadSlots`, so it names the thread's pocket in every
/// pool.
pub fn slot_address() -> usize {
    use mempool_policies::sync::ThreadSlots;
    static PROBE: OnceLock<ThreadSlots<AtomicUsize>> = OnceLock::new();
    PROBE
        .get_or_init(ThreadSlots::new)
        .get()
        .map_or(0, |slot| slot as *const AtomicUsize as usize)
}

/// Runs `f` on a new thread that received the `ThreadSlots` index whose probe
/// address is `slot` (an exited thread's), if one does within 256 tries:
/// threads that get another index stay parked until one gets this one
/// (indices are handed out lowest first). `None` if threads of other tests
/// kept the index the whole time.
pub fn on_inherited_index<R: Send + 'static>(
    slot: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<JoinHandle<R>> {
    let f = Arc::new(Mutex::new(Some(f)));
    let mut parked = Vec::new();
    let mut found = None;
    for _ in 0..256 {
        let (info_tx, info_rx) = mpsc::channel();
        let (free_tx, free_rx) = mpsc::channel::<()>();
        let f = Arc::clone(&f);
        let handle = std::thread::spawn(move || {
            if slot_address() != slot {
                info_tx.send(false).unwrap();
                let _ = free_rx.recv();
                return None;
            }
            info_tx.send(true).unwrap();
            let f = f.lock().unwrap().take().unwrap();
            Some(f())
        });
        if info_rx.recv().unwrap() {
            found = Some(handle);
            break;
        }
        parked.push((handle, free_tx));
    }
    for (handle, free) in parked {
        drop(free);
        assert!(handle.join().unwrap().is_none());
    }
    found.map(|handle| {
        std::thread::spawn(move || handle.join().unwrap().expect("the inheritor ran"))
    })
}

/// Runs `round` `rounds` times; each says whether a new thread received
/// the index it waited for (threads of other tests may keep it, so a round
/// may check less). Fails if no round ever saw the index passed on.
pub fn rounds_passing_an_index_on(rounds: usize, what: &str, mut round: impl FnMut(usize) -> bool) {
    let passed_on = (0..rounds).filter(|&r| round(r)).count();
    eprintln!("rounds in which a new thread inherited {what}: {passed_on} of {rounds}");
    assert!(
        passed_on > 0,
        "no thread ever received the exited thread's index"
    );
}

// ---------------------------------------------------------------------------
// What a hook of a [`hooked_pool`] does when it uses its own pool.
// ---------------------------------------------------------------------------

thread_local! {
    /// Set while a hook or a `Drop` uses its pool, so that what that use
    /// runs does not use it again (endless recursion would be the user's
    /// bug).
    pub static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Everything a hook can do with its own pool while the value being
/// returned still holds its pocket slot.
pub fn reenter(pool: &Hooked, knobs: &Knobs) {
    if IN_HOOK.with(|f| f.replace(true)) {
        return;
    }
    let a = pool.get();
    a.use_for(|| ());
    if let Some(g) = pool.try_get() {
        g.use_for(|| ());
    }
    let t = mempool::PoolGuard::take(pool.get());
    let _ = pool.put(t);
    pool.trim();
    drop((pool.get(), pool.get()));
    pool.decay();
    pool.decay();
    let _ = (pool.idle(), pool.stats(), format!("{pool:?}"));
    drop(a);
    knobs.reentered.fetch_add(1, SeqCst);
    IN_HOOK.with(|f| f.set(false));
}

/// Everything a hook can do with its own pool while the value being returned
/// still holds its owner slot: get (nested three deep, so both free slots
/// and beyond), `try_get`, take and put, trim, decay twice.
pub fn reenter_three_deep(pool: &Hooked, knobs: &Knobs) {
    if IN_HOOK.with(|f| f.replace(true)) {
        return;
    }
    let (a, b, c) = (pool.get(), pool.get(), pool.get());
    a.use_for(|| b.use_for(|| c.use_for(|| ())));
    drop(c);
    if let Some(g) = pool.try_get() {
        g.use_for(|| ());
    }
    let t = mempool::PoolGuard::take(pool.get());
    let _ = pool.put(t);
    pool.trim();
    drop(pool.get());
    pool.decay();
    pool.decay();
    let _ = (pool.idle(), pool.stats(), format!("{pool:?}"));
    drop((a, b));
    knobs.reentered.fetch_add(1, SeqCst);
    IN_HOOK.with(|f| f.set(false));
}

/// Every order of `0..n`, for tests that return nested guards in each.
pub fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

/// Drops `guards` in the order `order` names.
pub fn drop_in_order<G>(guards: Vec<G>, order: &[usize]) {
    let mut guards: Vec<Option<G>> = guards.into_iter().map(Some).collect();
    for &i in order {
        drop(guards[i].take().unwrap());
    }
}
