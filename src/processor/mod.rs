//! Everything between a person's input and tensors: image decoding, resizing,
//! patchifying, the model's chat template, tokenizing and detokenizing, and
//! on the way back, the boxes and points in the model's answers.

pub mod detokenize;
pub mod font;
pub mod grounding;
pub mod image;
pub mod lettering;
pub mod prompt;
pub mod reasoning;
pub mod resize;
pub mod template;
pub mod thinking;
pub mod tokenizer;
pub mod vision_input;
