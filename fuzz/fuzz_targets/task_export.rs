#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    canopy::fuzzing::task_export(data);
});
