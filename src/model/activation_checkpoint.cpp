#include "rlhf/model/activation_checkpoint.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <mutex>

#include "rlhf/core/precision.h"

namespace rlhf {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward needs to run the segment again as the forward ran it.
struct Segment : torch::CustomClassHolder {
    std::function<torch::Tensor(const torch::Tensor&)> run;
    torch::Device device{torch::kCPU};
    bool replay_rng = false;
    torch::Tensor rng_state;  // the device's default generator before the forward
    bool autocast = false;    // bf16 autocast on the device (precision.h)
};

// The default generator of `device` set to `state` for this scope, then put back where it was,
// so that the recomputation neither changes nor depends on what ran in between.
class GeneratorReplay {
public:
    GeneratorReplay(const torch::Device& device, const torch::Tensor& state, bool active)
        : gen_(at::globalContext().defaultGenerator(device)), active_(active) {
        if (!active_) return;
        std::lock_guard<std::mutex> lock(gen_.mutex());
        after_ = gen_.get_state();
        gen_.set_state(state);
    }
    ~GeneratorReplay() {
        if (!active_) return;
        std::lock_guard<std::mutex> lock(gen_.mutex());
        gen_.set_state(after_);
    }
    GeneratorReplay(const GeneratorReplay&) = delete;
    GeneratorReplay& operator=(const GeneratorReplay&) = delete;

private:
    at::Generator gen_;
    bool active_;
    torch::Tensor after_;
};

struct CheckpointFn : torch::autograd::Function<CheckpointFn> {
    // `anchor`: an empty tensor that requires grad, so that this node is in the graph even when x
    // does not require grad (frozen embeddings) and the parameters inside still get theirs.
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& anchor,
                                 const c10::intrusive_ptr<Segment>& segment) {
        (void)anchor;
        ctx->save_for_backward({x});
        ctx->saved_data["segment"] = c10::IValue::make_capsule(segment);
        torch::NoGradGuard no_grad;
        return segment->run(x);
    }

    static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
        auto segment = c10::static_intrusive_pointer_cast<Segment>(ctx->saved_data["segment"].toCapsule());
        const auto saved = ctx->get_saved_variables();
        auto x = saved[0].detach().requires_grad_(saved[0].requires_grad());
        torch::Tensor y;
        {
            GeneratorReplay replay(segment->device, segment->rng_state, segment->replay_rng);
            AutocastGuard autocast(segment->autocast, segment->device.type());
            torch::AutoGradMode grad_mode(true);
            y = segment->run(x);
        }
        torch::autograd::backward({y}, {grad_outputs[0]});
        return {x.requires_grad() ? x.grad() : torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace

torch::Tensor checkpointed(const std::function<torch::Tensor(const torch::Tensor&)>& segment, const torch::Tensor& x,
                           bool replay_rng) {
    auto s = c10::make_intrusive<Segment>();
    s->run = segment;
    s->device = x.device();
    s->replay_rng = replay_rng;
    if (replay_rng) {
        auto gen = at::globalContext().defaultGenerator(s->device);
        std::lock_guard<std::mutex> lock(gen.mutex());
        s->rng_state = gen.get_state();
    }
    s->autocast = autocast_active(s->device.type());
    const auto anchor = torch::empty({0}, x.options().dtype(torch::kFloat32).requires_grad(true));
    return CheckpointFn::apply(x, anchor, s);
}

}  // namespace rlhf
