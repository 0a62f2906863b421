//! The few ONNX Runtime C API calls the library makes, as safe(r) Rust: statuses, a kernel's
//! inputs and outputs, and the session's parallel-for. Only functions of C API versions up to
//! [`ops::decl::LIBRARY_MIN_ORT_API`] are called, so the same file works with every runtime from
//! that version on (the `OrtApi` table only ever grows at its end).

use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use ort_sys::{
    ONNXTensorElementDataType, OrtApi, OrtErrorCode, OrtKernelContext, OrtStatus, OrtStatusPtr,
    OrtTensorTypeAndShapeInfo, OrtValue,
};

use ops::decl::DType;

/// A kernel's failure, reported to ONNX Runtime as an `OrtStatus`.
pub type Failure = String;

/// The runtime's API table, valid for the life of the process that loaded us.
#[derive(Clone, Copy)]
pub struct Api(pub &'static OrtApi);

impl Api {
    /// A failed status carrying `message` (ORT_FAIL).
    pub fn fail(self, message: &str) -> OrtStatusPtr {
        status(self.0, OrtErrorCode::ORT_FAIL, message)
    }

    /// `Ok` for a null status, else its message (the status is released).
    pub fn check(self, s: OrtStatusPtr) -> Result<(), Failure> {
        if s.0.is_null() {
            return Ok(());
        }
        // SAFETY: a non-null status from this API; read before it is released.
        let message = unsafe {
            let m = (self.0.GetErrorMessage)(s.0);
            let text = if m.is_null() {
                "(no message)".to_string()
            } else {
                std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned()
            };
            (self.0.ReleaseStatus)(s.0);
            text
        };
        Err(message)
    }
}

/// A status with `code` and `message` from `api` (`CreateStatus` is in every API version, at
/// the table's first slot).
pub fn status(api: &OrtApi, code: OrtErrorCode, message: &str) -> OrtStatusPtr {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: CreateStatus copies the message.
    unsafe { (api.CreateStatus)(code, c.as_ptr()) }
}

/// The element type ONNX Runtime uses for a declared dtype.
pub fn element_type(d: DType) -> ONNXTensorElementDataType {
    match d {
        DType::F32 => ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
        DType::I64 => ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
        DType::I32 => ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
    }
}

/// Rust element types a tensor can be read or written as.
pub trait Element: Copy {
    /// The declared dtype this Rust type stands for.
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}

impl Element for i64 {
    const DTYPE: DType = DType::I64;
}

impl Element for i32 {
    const DTYPE: DType = DType::I32;
}

/// One compute call: the kernel context and the API it came with.
pub struct Context {
    api: Api,
    ctx: *mut OrtKernelContext,
    /// Outputs handed out so far: each at most once, so no two slices alias.
    taken: std::cell::RefCell<Vec<usize>>,
}

/// The shape and element type of a tensor, read through its type-and-shape info.
fn shape_of(
    api: Api,
    value: *const OrtValue,
) -> Result<(Vec<usize>, usize, ONNXTensorElementDataType), Failure> {
    let mut info: *mut OrtTensorTypeAndShapeInfo = std::ptr::null_mut();
    // SAFETY: `value` is a live tensor of this call; the info is released below.
    unsafe {
        api.check((api.0.GetTensorTypeAndShape)(value, &mut info))?;
        let result = (|| {
            let mut n = 0usize;
            api.check((api.0.GetDimensionsCount)(info, &mut n))?;
            let mut dims = vec![0i64; n];
            api.check((api.0.GetDimensions)(info, dims.as_mut_ptr(), n))?;
            let mut ty = ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
            api.check((api.0.GetTensorElementType)(info, &mut ty))?;
            if let Some(d) = dims.iter().find(|&&d| d < 0) {
                return Err(format!("dimension {d} in shape {dims:?}"));
            }
            let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            let len = dims.iter().product();
            Ok((dims, len, ty))
        })();
        (api.0.ReleaseTensorTypeAndShapeInfo)(info);
        result
    }
}

impl Context {
    /// The context of one compute call.
    pub fn new(api: Api, ctx: *mut OrtKernelContext) -> Self {
        Self {
            api,
            ctx,
            taken: Default::default(),
        }
    }

    /// Input `index` (named `name` in errors) as a shape and a slice of `T`, checked to be of
    /// `T`'s element type.
    pub fn input<T: Element>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<(Vec<usize>, &[T]), Failure> {
        let api = self.api;
        let mut value: *const OrtValue = std::ptr::null();
        // SAFETY: the context is live for this call; the value belongs to it.
        unsafe {
            api.check((api.0.KernelContext_GetInput)(self.ctx, index, &mut value))?;
        }
        if value.is_null() {
            return Err(format!("input `{name}` missing"));
        }
        let (dims, len, ty) = shape_of(api, value).map_err(|e| format!("input `{name}`: {e}"))?;
        if ty != element_type(T::DTYPE) {
            return Err(format!(
                "input `{name}` has element type {ty:?}, expected {:?}",
                T::DTYPE
            ));
        }
        if len == 0 {
            return Ok((dims, &[]));
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: the tensor holds `len` elements of T (its element type was checked) and is
        // only read; ORT keeps it alive for the call.
        unsafe {
            api.check((api.0.GetTensorMutableData)(
                value as *mut OrtValue,
                &mut data,
            ))?;
            if data.is_null() {
                return Err(format!("input `{name}` has no data"));
            }
            Ok((dims, std::slice::from_raw_parts(data as *const T, len)))
        }
    }

    /// Output `index` allocated with `shape`, as a mutable slice of `T` (once per output).
    // The slice is ONNX Runtime's buffer, not part of `self`: distinct outputs are distinct
    // buffers, and asking for one output twice is refused.
    #[allow(clippy::mut_from_ref)]
    pub fn output<T: Element>(&self, index: usize, shape: &[usize]) -> Result<&mut [T], Failure> {
        {
            let mut taken = self.taken.borrow_mut();
            if taken.contains(&index) {
                return Err(format!("output {index} asked for twice"));
            }
            taken.push(index);
        }
        let api = self.api;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let mut value: *mut OrtValue = std::ptr::null_mut();
        // SAFETY: the context is live; ORT allocates the output and keeps it for the call.
        unsafe {
            api.check((api.0.KernelContext_GetOutput)(
                self.ctx,
                index,
                dims.as_ptr(),
                dims.len(),
                &mut value,
            ))?;
        }
        if value.is_null() {
            return Err(format!("output {index} not allocated"));
        }
        let len: usize = shape.iter().product();
        if len == 0 {
            return Ok(&mut []);
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        // SAFETY: ORT allocated `len` elements of the output's declared type (T, by the op's
        // declaration), written only through this slice during the call.
        unsafe {
            api.check((api.0.GetTensorMutableData)(value, &mut data))?;
            if data.is_null() {
                return Err(format!("output {index} has no data"));
            }
            Ok(std::slice::from_raw_parts_mut(data as *mut T, len))
        }
    }

    /// Runs `body(i)` for every `i` in `0..units` on the session's intra-op thread pool.
    pub fn parallel_for(&self, units: usize, body: &(dyn Fn(usize) + Sync)) -> Result<(), Failure> {
        struct Job<'a> {
            body: &'a (dyn Fn(usize) + Sync),
            panicked: AtomicBool,
        }
        unsafe extern "C" fn call(data: *mut c_void, i: usize) {
            // SAFETY: `data` is the `Job` below, alive until ParallelFor returns.
            let job = unsafe { &*(data as *const Job<'_>) };
            // A panic must not unwind into ONNX Runtime's C++ threads.
            if catch_unwind(AssertUnwindSafe(|| (job.body)(i))).is_err() {
                job.panicked.store(true, Ordering::Relaxed);
            }
        }
        let job = Job {
            body,
            panicked: AtomicBool::new(false),
        };
        let api = self.api;
        // SAFETY: ParallelFor calls `call` for each index before it returns; 0 batches lets
        // ONNX Runtime choose (as focus-export's own registration does).
        unsafe {
            api.check((api.0.KernelContext_ParallelFor)(
                self.ctx,
                call,
                units,
                0,
                &job as *const Job<'_> as *mut c_void,
            ))?;
        }
        if job.panicked.load(Ordering::Relaxed) {
            return Err("a kernel thread panicked".into());
        }
        Ok(())
    }
}

/// The status for a kernel result: null on success, else the failure (which names the op).
pub fn result_status(
    api: Api,
    op: &str,
    r: std::thread::Result<Result<(), Failure>>,
) -> *mut OrtStatus {
    match r {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => api.fail(&e).0,
        Err(_) => api.fail(&format!("{op}: the kernel panicked")).0,
    }
}
