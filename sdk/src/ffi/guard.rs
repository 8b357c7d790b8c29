//! What every exported function shares: panic capture, the thread's last error, and argument
//! checks that turn bad pointers and lengths into `InvalidArgument` instead of a crash.

use crate::error::{Error, Status};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `e` as this thread's last error.
pub(crate) fn set_last_error(e: &Error) {
    let message = e.to_string();
    LAST_ERROR.with(|l| *l.borrow_mut() = message);
}

/// This thread's last error message (empty when none).
pub(crate) fn last_error() -> String {
    LAST_ERROR.with(|l| l.borrow().clone())
}

/// Runs an exported function's body: a returned error becomes its status (and the thread's
/// last error); a panic becomes `Internal` instead of unwinding into C, which would abort the
/// whole game.
pub(crate) fn guard(body: impl FnOnce() -> Result<Status, Error>) -> Status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            set_last_error(&e);
            e.status()
        }
        Err(panic) => {
            let e = Error::Internal(format!("caught panic: {}", panic_message(&*panic)));
            set_last_error(&e);
            e.status()
        }
    }
}

/// What a caught panic said, when it said it with a string.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn invalid(what: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("{what}: {why}"))
}

/// Checks a caller pointer: not null and aligned for `T`.
pub(crate) fn check_ptr<T>(ptr: *const T, what: &str) -> Result<(), Error> {
    if ptr.is_null() {
        return Err(invalid(what, "null pointer"));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(invalid(what, "misaligned pointer"));
    }
    Ok(())
}

/// Checks a caller count is within `1..=max`.
pub(crate) fn check_count(count: usize, max: usize, what: &str) -> Result<(), Error> {
    if count == 0 || count > max {
        return Err(invalid(what, &format!("count {count} outside 1..={max}")));
    }
    Ok(())
}

/// A caller array as a slice.
///
/// # Safety
/// `ptr` must point to `len` readable `T` that stay valid and unchanged for `'a`.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    max: usize,
    what: &str,
) -> Result<&'a [T], Error> {
    check_ptr(ptr, what)?;
    check_count(len, max, what)?;
    // SAFETY: non-null, aligned, caller promises `len` valid elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A caller UTF-8 string given as bytes and length (no NUL needed).
///
/// # Safety
/// As [`slice`].
pub(crate) unsafe fn utf8<'a>(
    ptr: *const u8,
    len: usize,
    max: usize,
    what: &str,
) -> Result<&'a str, Error> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { slice(ptr, len, max, what) }?;
    std::str::from_utf8(bytes).map_err(|_| invalid(what, "not valid UTF-8"))
}

/// Puts back a message saved before a call that must not change the last error.
pub(crate) fn restore_last_error(message: String) {
    LAST_ERROR.with(|l| *l.borrow_mut() = message);
}
