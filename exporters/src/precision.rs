//! The precision a model computes in: the `--precision` names and the metadata value.

/// The precision a model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// float32 throughout.
    #[default]
    Fp32,
    /// float16 with float32 islands (see [`crate::fp16`]).
    Fp16,
    /// int8 matrix products and convolutions written as QuantizeLinear/DequantizeLinear, with
    /// float32 where int8 breaks the model (see [`crate::int8`]).
    Int8,
}

impl Precision {
    /// Every precision, in the order reports list them.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Fp16, Precision::Int8];

    /// The name used on the command line and in the model's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}`: expected fp32, fp16 or int8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.as_str().parse::<Precision>(), Ok(p));
        }
        assert!("fp8".parse::<Precision>().is_err());
    }
}
