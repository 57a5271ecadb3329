//! Quantised weight formats for the decoder's projections: the names people
//! type, the ggml block format each one means, and what a weight costs.

use candle_core::quantized::GgmlDType;

/// How the decoder's linear layers and output head are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quant {
    /// The float dtype of the model.
    #[default]
    None,
    Q8_0,
    Q6K,
    Q5K,
    Q4K,
}

impl Quant {
    pub const ALL: [Quant; 5] = [Quant::None, Quant::Q8_0, Quant::Q6K, Quant::Q5K, Quant::Q4K];

    pub fn name(self) -> &'static str {
        match self {
            Quant::None => "none",
            Quant::Q8_0 => "q8_0",
            Quant::Q6K => "q6k",
            Quant::Q5K => "q5k",
            Quant::Q4K => "q4k",
        }
    }

    pub fn parse(s: &str) -> Result<Quant, String> {
        let wanted = s.trim().to_ascii_lowercase().replace("_k", "k");
        Quant::ALL
            .into_iter()
            .find(|q| q.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Quant::ALL.iter().map(|q| q.name()).collect();
                format!("unknown quant type {s:?}; use one of {}", names.join(", "))
            })
    }

    /// The block format of a matrix whose rows are `inputs` long. K-quants
    /// need rows in whole 256-value blocks; narrower rows take the 32-value
    /// format llama.cpp falls back to for the same type, and q8_0 where the
    /// row has an odd number of 32-value blocks, which candle's q5 dot
    /// products (two blocks per step) cannot take. `None` where even that
    /// does not divide the row: the matrix stays float.
    pub fn format_for(self, inputs: usize) -> Option<GgmlDType> {
        let (wide, fallback) = match self {
            Quant::None => return None,
            Quant::Q8_0 => (GgmlDType::Q8_0, GgmlDType::Q8_0),
            Quant::Q6K => (GgmlDType::Q6K, GgmlDType::Q8_0),
            Quant::Q5K => (GgmlDType::Q5K, GgmlDType::Q5_1),
            Quant::Q4K => (GgmlDType::Q4K, GgmlDType::Q5_0),
        };
        let pairs_only = |f: GgmlDType| matches!(f, GgmlDType::Q5_0 | GgmlDType::Q5_1);
        [wide, fallback, GgmlDType::Q8_0].into_iter().find(|&f| {
            let size = if pairs_only(f) {
                2 * f.block_size()
            } else {
                f.block_size()
            };
            inputs.is_multiple_of(size)
        })
    }

    /// Bytes per weight of the quantised matrices (their main format), or
    /// `None` for float weights.
    pub fn bytes_per_weight(self) -> Option<f64> {
        let format = self.format_for(256 * 32)?;
        Some(format.type_size() as f64 / format.block_size() as f64)
    }
}

impl std::str::FromStr for Quant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Quant::parse(s)
    }
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_wrong_one_lists_the_valid_ones() {
        for q in Quant::ALL {
            assert_eq!(Quant::parse(q.name()), Ok(q));
        }
        assert_eq!(Quant::parse("Q4_K"), Ok(Quant::Q4K));
        let e = Quant::parse("q3").unwrap_err();
        assert_eq!(
            e,
            "unknown quant type \"q3\"; use one of none, q8_0, q6k, q5k, q4k"
        );
    }

    #[test]
    fn rows_too_narrow_for_k_quants_take_the_32_value_fallback() {
        assert_eq!(Quant::Q4K.format_for(1536), Some(GgmlDType::Q4K));
        assert_eq!(Quant::Q4K.format_for(64), Some(GgmlDType::Q5_0));
        assert_eq!(Quant::Q6K.format_for(64), Some(GgmlDType::Q8_0));
        assert_eq!(Quant::Q8_0.format_for(48), None);
        // An odd number of 32-value blocks cannot take the q5 formats.
        assert_eq!(Quant::Q4K.format_for(96), Some(GgmlDType::Q8_0));
        assert_eq!(Quant::Q5K.format_for(32), Some(GgmlDType::Q8_0));
        assert_eq!(Quant::Q5K.format_for(128), Some(GgmlDType::Q5_1));
        assert_eq!(Quant::None.format_for(1536), None);
    }

    #[test]
    fn quantised_weights_cost_what_their_blocks_hold() {
        assert_eq!(Quant::None.bytes_per_weight(), None);
        assert_eq!(Quant::Q8_0.bytes_per_weight(), Some(34.0 / 32.0));
        assert_eq!(Quant::Q4K.bytes_per_weight(), Some(144.0 / 256.0));
    }
}
