//! Focus-DETR custom ops. Declared here, with kernels and lowerings, in the custom-ops issue.
