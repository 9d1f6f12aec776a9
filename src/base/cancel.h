// A one-shot cancellation hook shared by a request and the work it started. Whoever starts
// cancellable work (an upstream connection, a timer) installs the action that aborts it; the
// request calls Cancel() when its client goes away. Single-threaded: both sides run on the
// same io_context thread.
#pragma once

#include <functional>
#include <utility>

namespace beacon::base {

class Canceller {
  public:
    bool cancelled() const { return cancelled_; }

    // Installs the action for the current piece of work (replacing any earlier one). If the
    // request was already cancelled, the action runs at once.
    void OnCancel(std::function<void()> action) {
        action_ = std::move(action);
        if (cancelled_ && action_) action_();
    }
    void Clear() { action_ = nullptr; }

    void Cancel() {
        if (cancelled_) return;
        cancelled_ = true;
        if (action_) action_();
    }

  private:
    std::function<void()> action_;
    bool cancelled_ = false;
};

}  // namespace beacon::base
