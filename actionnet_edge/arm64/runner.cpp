// actionnet-edge's ExecuTorch runner: runs a .pte's "forward" on raw little-endian float32 inputs.
//
//   runner MODEL.pte INPUTS.bin OUTPUTS.bin STEPS [stream]
//
// Without "stream", INPUTS.bin holds STEPS sets of every input (in the method's order) and
// OUTPUTS.bin receives STEPS sets of every output. With "stream" (the streaming step: frame,
// then the state), INPUTS.bin holds STEPS frames only; the state starts at zero and output
// 2 + i is fed back as input 1 + i after each step; OUTPUTS.bin receives every output per step.
// Built by actionnet_edge.verify.arm64 with g++-aarch64-linux-gnu against the executorch
// wheel's own headers and libraries.
#include <executorch/extension/data_loader/file_data_loader.h>
#include <executorch/extension/memory_allocator/malloc_memory_allocator.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

#include <sys/prctl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

using namespace executorch::runtime;

namespace executorch::extension::threadpool {  // libexecutorch_threadpool (its header is not in the wheel)
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
using executorch::aten::Tensor;
using executorch::aten::TensorImpl;
using executorch::extension::FileDataLoader;
using executorch::extension::MallocMemoryAllocator;

static int fail(const char* what) {
  std::fprintf(stderr, "runner: %s\n", what);
  return 1;
}

struct Input {  // one float32 input tensor owned by the runner
  std::vector<TensorImpl::SizesType> sizes;
  std::vector<TensorImpl::DimOrderType> dim_order;
  std::vector<TensorImpl::StridesType> strides;
  std::vector<float> data;
  std::unique_ptr<TensorImpl> impl;
};

static bool make_input(const TensorInfo& info, Input& in) {
  if (info.scalar_type() != executorch::aten::ScalarType::Float) return false;
  auto sz = info.sizes();
  auto order = info.dim_order();
  size_t n = 1;
  for (size_t d = 0; d < sz.size(); ++d) {
    in.sizes.push_back(sz[d]);
    in.dim_order.push_back(order[d]);
    n *= sz[d];
  }
  in.strides.resize(sz.size());
  TensorImpl::StridesType s = 1;
  for (size_t d = sz.size(); d-- > 0;) {  // contiguous strides in dim order
    in.strides[order[d]] = s;
    s *= sz[order[d]];
  }
  in.data.assign(n, 0.0f);
  in.impl.reset(new TensorImpl(executorch::aten::ScalarType::Float, sz.size(), in.sizes.data(), in.data.data(),
                               in.dim_order.data(), in.strides.data()));
  return true;
}

int main(int argc, char** argv) {
  if (argc < 5) return fail("usage: runner MODEL.pte INPUTS.bin OUTPUTS.bin STEPS [stream]");
  const bool stream = argc > 5 && std::strcmp(argv[5], "stream") == 0;
  const long steps = std::atol(argv[4]);
  runtime_init();
  if (const char* t = std::getenv("ACTIONNET_RUNNER_THREADS"))  // e.g. 1: instruction counts are exact
    executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(std::atoi(t));
  auto loader = FileDataLoader::from(argv[1]);
  if (!loader.ok()) return fail("cannot open the model file");
  auto program = Program::load(&loader.get());
  if (!program.ok()) return fail("not a valid ExecuTorch program");
  auto meta = program->method_meta("forward");
  if (!meta.ok()) return fail("the program has no 'forward' method");
  std::vector<std::vector<uint8_t>> planned(meta->num_memory_planned_buffers());
  std::vector<Span<uint8_t>> spans;
  for (size_t i = 0; i < planned.size(); ++i) {
    planned[i].resize(meta->memory_planned_buffer_size(i).get());
    spans.emplace_back(planned[i].data(), planned[i].size());
  }
  HierarchicalAllocator planned_memory({spans.data(), spans.size()});
  MallocMemoryAllocator method_allocator, temp_allocator;
  MemoryManager memory(&method_allocator, &planned_memory, &temp_allocator);
  auto method = program->load_method("forward", &memory);
  if (!method.ok()) return fail("cannot load 'forward' (missing kernel or backend?)");
  const size_t n_in = meta->num_inputs(), n_out = meta->num_outputs();
  if (stream && n_out < 2 + (n_in - 1)) return fail("stream: the method has fewer state outputs than inputs");
  std::vector<Input> inputs(n_in);
  for (size_t i = 0; i < n_in; ++i)
    if (!make_input(meta->input_tensor_meta(i).get(), inputs[i])) return fail("an input is not a float32 tensor");
  FILE* fin = std::fopen(argv[2], "rb");
  FILE* fout = std::fopen(argv[3], "wb");
  if (!fin || !fout) return fail("cannot open the inputs or outputs file");
  for (long step = 0; step < steps; ++step) {
    for (size_t i = 0; i < (stream ? 1 : n_in); ++i) {
      auto& d = inputs[i].data;
      if (std::fread(d.data(), sizeof(float), d.size(), fin) != d.size()) return fail("inputs file too short");
    }
    for (size_t i = 0; i < n_in; ++i)
      if (method->set_input(EValue(Tensor(inputs[i].impl.get())), i) != Error::Ok) return fail("set_input failed");
    prctl(0x41524d43, 1, 0, 0, 0);  // instruction-count marker (actionnet_edge.bench.armcost): EINVAL, no effect
    const Error status = method->execute();
    prctl(0x41524d43, 0, 0, 0, 0);
    if (status != Error::Ok) return fail("execute failed");
    for (size_t o = 0; o < n_out; ++o) {
      const Tensor t = method->get_output(o).toTensor();
      if (t.scalar_type() != executorch::aten::ScalarType::Float) return fail("an output is not float32");
      std::fwrite(t.const_data_ptr<float>(), sizeof(float), t.numel(), fout);
      if (stream && o >= 2) {  // new state -> next step's input
        auto& d = inputs[o - 1].data;
        if (d.size() != size_t(t.numel())) return fail("stream: a state output's size differs from its input's");
        std::memcpy(d.data(), t.const_data_ptr<float>(), d.size() * sizeof(float));
      }
    }
  }
  std::fclose(fin);
  return std::fclose(fout) == 0 ? 0 : fail("cannot write the outputs file");
}
