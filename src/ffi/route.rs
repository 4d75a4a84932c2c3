//! Which routing block is running (Kamailio's per-process route type).

use super::bindings::{
    topos_shim_route_type, BRANCH_ROUTE, CORE_ONREPLY_ROUTE, FAILURE_ROUTE, LOCAL_ROUTE,
    REQUEST_ROUTE, TM_ONREPLY_ROUTE,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Request,
    Failure,
    Branch,
    CoreOnReply,
    TmOnReply,
    /// tm's event_route[tm:local-request] (requests Kamailio sends itself).
    Local,
    Other,
}

pub fn current_route() -> Route {
    // SAFETY: reads a per-process global of the core.
    let t = unsafe { topos_shim_route_type() } as u32;
    if t & TM_ONREPLY_ROUTE != 0 {
        Route::TmOnReply
    } else if t & CORE_ONREPLY_ROUTE != 0 {
        Route::CoreOnReply
    } else if t & FAILURE_ROUTE != 0 {
        Route::Failure
    } else if t & BRANCH_ROUTE != 0 {
        Route::Branch
    } else if t & REQUEST_ROUTE != 0 {
        Route::Request
    } else if t & LOCAL_ROUTE != 0 {
        Route::Local
    } else {
        Route::Other
    }
}
