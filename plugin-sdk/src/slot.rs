//! The one plugin value a component instance serves, between the host's calls.

use crate::error::Error;
use std::any::Any;
use std::cell::RefCell;

thread_local! {
    // A component instance is single-threaded; this holds the one plugin value it serves.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Makes `value` the instance's plugin value (at `init`).
pub(crate) fn put<S: 'static>(value: S) {
    INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(value)));
}

/// Runs `f` on the instance's plugin value; its error, or "called before init", as the
/// message the host receives.
pub(crate) fn with<S: 'static, R>(f: impl FnOnce(&mut S) -> Result<R, Error>) -> Result<R, String> {
    INSTANCE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let value = slot
            .as_mut()
            .and_then(|b| b.downcast_mut::<S>())
            .ok_or_else(|| "the host called the plugin before init".to_string())?;
        f(value).map_err(|e| e.to_string())
    })
}
