//! Each op's `OrtCustomOp` table, derived from its `focus_ops::decl` declaration: name, input
//! and output types, the kernel's creation, compute and destruction. The tables are statics,
//! valid for as long as the library stays loaded (ONNX Runtime keeps pointers to them).

use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use ort_sys::{
    ONNXTensorElementDataType, OrtApi, OrtCustomOp, OrtCustomOpInputOutputCharacteristic,
    OrtKernelContext, OrtKernelInfo, OrtMemType, OrtStatusPtr,
};

use ops::decl::{OpDecl, LIBRARY_MIN_ORT_API};

use crate::api::{element_type, result_status, Api, Context};
use crate::kernels::{DynamicTopK, LibraryOp, MsDeformAttn};

/// Every op of the library with its table (the same ops as `focus_ops::decl::DOMAIN_OPS`,
/// checked by a test).
pub static TABLES: [(&OpDecl, &OrtCustomOp); 2] = [
    (MsDeformAttn::DECL, &MS_DEFORM_ATTN),
    (DynamicTopK::DECL, &DYNAMIC_TOPK),
];

static MS_DEFORM_ATTN: OrtCustomOp = table::<MsDeformAttn>();
static DYNAMIC_TOPK: OrtCustomOp = table::<DynamicTopK>();

/// A kernel instance: the API it was created with and its op's compute body.
struct Kernel {
    api: Api,
    op: &'static str,
    compute: fn(&Context) -> Result<(), String>,
}

/// The op's name as a C string (kept for the life of the process).
fn c_name(op: &'static OpDecl) -> *const c_char {
    static NAMES: OnceLock<Vec<(&'static str, CString)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        TABLES
            .iter()
            .map(|(d, _)| (d.op_type, CString::new(d.op_type).unwrap_or_default()))
            .collect()
    });
    names
        .iter()
        .find(|(n, _)| *n == op.op_type)
        .map_or(std::ptr::null(), |(_, c)| c.as_ptr())
}

unsafe extern "system" fn get_name<T: LibraryOp>(_: *const OrtCustomOp) -> *const c_char {
    catch_unwind(|| c_name(T::DECL)).unwrap_or(std::ptr::null())
}

/// Null: the CPU provider.
unsafe extern "system" fn provider(_: *const OrtCustomOp) -> *const c_char {
    std::ptr::null()
}

unsafe extern "system" fn input_type<T: LibraryOp>(
    _: *const OrtCustomOp,
    i: usize,
) -> ONNXTensorElementDataType {
    T::DECL.inputs.get(i).map_or(
        ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED,
        |t| element_type(t.dtype),
    )
}

unsafe extern "system" fn input_count<T: LibraryOp>(_: *const OrtCustomOp) -> usize {
    T::DECL.inputs.len()
}

unsafe extern "system" fn output_type<T: LibraryOp>(
    _: *const OrtCustomOp,
    i: usize,
) -> ONNXTensorElementDataType {
    T::DECL.outputs.get(i).map_or(
        ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED,
        |t| element_type(t.dtype),
    )
}

unsafe extern "system" fn output_count<T: LibraryOp>(_: *const OrtCustomOp) -> usize {
    T::DECL.outputs.len()
}

/// Every input and output is required (none is optional or variadic).
unsafe extern "system" fn required(
    _: *const OrtCustomOp,
    _: usize,
) -> OrtCustomOpInputOutputCharacteristic {
    OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED
}

unsafe extern "system" fn memory_type(_: *const OrtCustomOp, _: usize) -> OrtMemType {
    OrtMemType::OrtMemTypeDefault
}

/// Variadic arity and homogeneity: unused (no variadic input or output).
unsafe extern "system" fn one(_: *const OrtCustomOp) -> c_int {
    1
}

unsafe extern "system" fn start_version<T: LibraryOp>(_: *const OrtCustomOp) -> c_int {
    T::DECL.version as c_int
}

unsafe extern "system" fn end_version(_: *const OrtCustomOp) -> c_int {
    c_int::MAX
}

unsafe extern "system" fn create_kernel<T: LibraryOp>(
    _: *const OrtCustomOp,
    api: *const OrtApi,
    _: *const OrtKernelInfo,
    kernel: *mut *mut c_void,
) -> OrtStatusPtr {
    // SAFETY: ONNX Runtime passes its API table, valid while the library is loaded.
    let Some(api) = (unsafe { api.as_ref() }) else {
        return OrtStatusPtr(std::ptr::null_mut());
    };
    let api = Api(api);
    let k = Box::new(Kernel {
        api,
        op: T::DECL.op_type,
        compute: T::compute,
    });
    if kernel.is_null() {
        return api.fail(&format!("{}: no place for the kernel", T::DECL.op_type));
    }
    // SAFETY: `kernel` is ONNX Runtime's out-pointer; the box is freed in `destroy_kernel`.
    unsafe { *kernel = Box::into_raw(k) as *mut c_void };
    OrtStatusPtr(std::ptr::null_mut())
}

unsafe extern "system" fn compute(kernel: *mut c_void, ctx: *mut OrtKernelContext) -> OrtStatusPtr {
    // SAFETY: `kernel` was made by `create_kernel` and is alive until `destroy_kernel`.
    let Some(k) = (unsafe { (kernel as *const Kernel).as_ref() }) else {
        return OrtStatusPtr(std::ptr::null_mut());
    };
    let c = Context::new(k.api, ctx);
    let r = catch_unwind(AssertUnwindSafe(|| (k.compute)(&c)));
    OrtStatusPtr(result_status(k.api, k.op, r))
}

unsafe extern "system" fn destroy_kernel(kernel: *mut c_void) {
    if !kernel.is_null() {
        // SAFETY: made by `Box::into_raw` in `create_kernel`, destroyed once by ONNX Runtime.
        drop(unsafe { Box::from_raw(kernel as *mut Kernel) });
    }
}

/// The table of op `T`. Its `version` is the oldest C API the library supports, so that any
/// newer runtime reads only the entries that version defines.
const fn table<T: LibraryOp>() -> OrtCustomOp {
    OrtCustomOp {
        version: LIBRARY_MIN_ORT_API,
        CreateKernel: None,
        GetName: Some(get_name::<T>),
        GetExecutionProviderType: Some(provider),
        GetInputType: Some(input_type::<T>),
        GetInputTypeCount: Some(input_count::<T>),
        GetOutputType: Some(output_type::<T>),
        GetOutputTypeCount: Some(output_count::<T>),
        KernelCompute: None,
        KernelDestroy: Some(destroy_kernel),
        GetInputCharacteristic: Some(required),
        GetOutputCharacteristic: Some(required),
        GetInputMemoryType: Some(memory_type),
        GetVariadicInputMinArity: Some(one),
        GetVariadicInputHomogeneity: Some(one),
        GetVariadicOutputMinArity: Some(one),
        GetVariadicOutputHomogeneity: Some(one),
        CreateKernelV2: Some(create_kernel::<T>),
        KernelComputeV2: Some(compute),
        InferOutputShapeFn: None,
        GetStartVersion: Some(start_version::<T>),
        GetEndVersion: Some(end_version),
        GetMayInplace: None,
        ReleaseMayInplace: None,
        GetAliasMap: None,
        ReleaseAliasMap: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_the_declared_domain() {
        let ours: Vec<&str> = TABLES.iter().map(|(d, _)| d.op_type).collect();
        let declared: Vec<&str> = ops::decl::DOMAIN_OPS.iter().map(|d| d.op_type).collect();
        assert_eq!(ours, declared);
        for (d, t) in TABLES.iter() {
            assert_eq!(t.version, LIBRARY_MIN_ORT_API);
            // SAFETY: the table's own entries, called as ONNX Runtime would.
            unsafe {
                let name = std::ffi::CStr::from_ptr((t.GetName.unwrap())(*t));
                assert_eq!(name.to_str().unwrap(), d.op_type);
                assert_eq!((t.GetInputTypeCount.unwrap())(*t), d.inputs.len());
                assert_eq!((t.GetOutputTypeCount.unwrap())(*t), d.outputs.len());
                for (i, input) in d.inputs.iter().enumerate() {
                    assert_eq!((t.GetInputType.unwrap())(*t, i), element_type(input.dtype));
                }
                for (i, output) in d.outputs.iter().enumerate() {
                    assert_eq!(
                        (t.GetOutputType.unwrap())(*t, i),
                        element_type(output.dtype)
                    );
                }
            }
        }
    }
}
