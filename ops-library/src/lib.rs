//! `libfocus_ops.so`: the `ai.focus_detr` custom ops (MsDeformAttn, DynamicTopK) for any ONNX
//! Runtime, loaded by Python's `SessionOptions.register_custom_ops_library`, C++'s
//! `RegisterCustomOpsLibrary_V2` or Triton's `model_operations`. ONNX Runtime calls
//! [`RegisterCustomOps`]; each op's `OrtCustomOp` table is built from its `focus_ops::decl`
//! declaration ([`op`]) and its kernel runs the `focus_ops` code ([`kernels`]) on the session's
//! intra-op pool. Runtimes older than [`ops::decl::LIBRARY_MIN_ORT_API`] get a clear error status.
//!
//! Nothing here may unwind into ONNX Runtime: every entry point catches panics.

mod api;
mod kernels;
mod op;

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use ort_sys::{OrtApi, OrtApiBase, OrtCustomOpDomain, OrtErrorCode, OrtSessionOptions, OrtStatus};

use ops::decl::{DOMAIN, DOMAIN_OPS, LIBRARY_MIN_ORT_API};

use api::Api;

/// What the library is, for `focus-export doctor` and anyone who loads it to ask.
fn info() -> &'static CStr {
    static INFO: OnceLock<CString> = OnceLock::new();
    INFO.get_or_init(|| {
        let ops: Vec<&str> = DOMAIN_OPS.iter().map(|o| o.op_type).collect();
        let text = format!(
            "focus-ops-library {}: domain {DOMAIN} v{} ({}); ONNX Runtime C API >= {LIBRARY_MIN_ORT_API} (1.{LIBRARY_MIN_ORT_API})",
            env!("CARGO_PKG_VERSION"),
            ops::decl::DOMAIN_VERSION,
            ops.join(", ")
        );
        CString::new(text).unwrap_or_default()
    })
}

/// A one-line description of the library (version, domain, ops, the ONNX Runtime it needs), as
/// a NUL-terminated string owned by the library.
#[no_mangle]
pub extern "C" fn FocusOpsLibraryInfo() -> *const c_char {
    catch_unwind(|| info().as_ptr()).unwrap_or(std::ptr::null())
}

/// The version of the runtime behind `base`, for messages.
///
/// # Safety
/// `base` is ONNX Runtime's API base.
unsafe fn runtime_version(base: &OrtApiBase) -> String {
    // SAFETY: GetVersionString returns a static NUL-terminated string.
    let v = unsafe { (base.GetVersionString)() };
    if v.is_null() {
        return "(unknown version)".into();
    }
    // SAFETY: non-null, NUL-terminated, owned by the runtime.
    unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned()
}

/// Registers the `ai.focus_detr` domain on `options`: the entry point ONNX Runtime looks up
/// when the library is loaded.
///
/// # Safety
/// Called by ONNX Runtime with live session options and its API base.
#[no_mangle]
pub unsafe extern "C" fn RegisterCustomOps(
    options: *mut OrtSessionOptions,
    base: *const OrtApiBase,
) -> *mut OrtStatus {
    // SAFETY: ONNX Runtime passes its own API base (null only from a broken host).
    let Some(base) = (unsafe { base.as_ref() }) else {
        return std::ptr::null_mut();
    };
    // SAFETY: GetApi returns null for a version the runtime does not have.
    let Some(api) = (unsafe { (base.GetApi)(LIBRARY_MIN_ORT_API).as_ref() }) else {
        // Version 1 of the table exists in every runtime, and its first entry makes statuses.
        // SAFETY: as above.
        return match unsafe { (base.GetApi)(1).as_ref() } {
            Some(v1) => {
                let message = format!(
                    "libfocus_ops: this process runs ONNX Runtime {}, older than the {DOMAIN} \
                     ops need: ONNX Runtime 1.{LIBRARY_MIN_ORT_API} or newer (C API \
                     {LIBRARY_MIN_ORT_API}: KernelComputeV2, KernelContext_ParallelFor)",
                    // SAFETY: the base is live.
                    unsafe { runtime_version(base) },
                );
                api::status(v1, OrtErrorCode::ORT_NOT_IMPLEMENTED, &message).0
            }
            None => std::ptr::null_mut(),
        };
    };
    let api = Api(api);
    match catch_unwind(AssertUnwindSafe(|| register(api, options))) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(message)) => api.fail(&format!("libfocus_ops: {message}")).0,
        Err(_) => api.fail("libfocus_ops: registration panicked").0,
    }
}

/// Creates the domain with every op and adds it to `options`.
fn register(api: Api, options: *mut OrtSessionOptions) -> Result<(), String> {
    let a: &OrtApi = api.0;
    let name = CString::new(DOMAIN).map_err(|e| e.to_string())?;
    let mut domain: *mut OrtCustomOpDomain = std::ptr::null_mut();
    let check = |s, what: &str| api.check(s).map_err(|m| format!("{what}: {m}"));
    // SAFETY: plain C API calls with live arguments. The domain is never released: ONNX Runtime
    // keeps a pointer to it in the session options and every session made from them, which may
    // outlive any point at which we could free it (as ONNX Runtime's own example libraries do,
    // it lives until the process ends; a few bytes per registration).
    unsafe {
        check(
            (a.CreateCustomOpDomain)(name.as_ptr(), &mut domain),
            "creating the domain",
        )?;
        for (decl, table) in op::TABLES.iter() {
            check(
                (a.CustomOpDomain_Add)(domain, *table),
                &format!("adding {}", decl.op_type),
            )?;
        }
        check(
            (a.AddCustomOpDomain)(options, domain),
            "adding the domain to the session options",
        )?;
    }
    Ok(())
}
