#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canopy::fuzzing::device_list(data);
});
