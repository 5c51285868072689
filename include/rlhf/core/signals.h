// SIGINT / SIGTERM handling for long jobs: the first signal only sets a flag, which the training
// loop checks once per step to save a checkpoint and exit cleanly; a second SIGINT kills at once.
#pragma once

namespace rlhf {

void install_stop_handlers();
// 0 when no stop was requested, else the signal number that requested it.
int stop_requested();
void reset_stop_request();  // for tests

}  // namespace rlhf
