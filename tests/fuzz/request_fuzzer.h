// The request fuzzer's entry points (request_fuzzer.cc), also for corpus_main.cc.
#ifndef CKPT_TESTS_FUZZ_REQUEST_FUZZER_H_
#define CKPT_TESTS_FUZZ_REQUEST_FUZZER_H_

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#endif  // CKPT_TESTS_FUZZ_REQUEST_FUZZER_H_
