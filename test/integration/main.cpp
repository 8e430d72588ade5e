// The doctest main for integration_proxy.
//  - A peer that goes away while a test writes to it must show up as an error return (EPIPE),
//    not kill the run: SIGPIPE is ignored.
//  - On the first failed assertion of a test case, the logs of the processes it started
//    (test/support/failure_logs.h) are printed once, under the failure.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <signal.h>

#include <iostream>

#include "test/support/failure_logs.h"

namespace {

class FailureLogListener : public doctest::IReporter {
 public:
  explicit FailureLogListener(const doctest::ContextOptions&) {}

  void test_case_start(const doctest::TestCaseData&) override { printed_ = false; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void log_assert(const doctest::AssertData& ad) override {
    if (ad.m_failed) print();
  }
  void test_case_exception(const doctest::TestCaseException&) override { print(); }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

 private:
  void print() {
    if (printed_) return;
    printed_ = true;
    std::cout << "\n==== logs of the processes this test started ====\n"
              << meshbox::test::registered_failure_logs() << "==== end of logs ====\n"
              << std::flush;
  }
  bool printed_ = false;
};

REGISTER_LISTENER("failure-logs", 1, FailureLogListener);

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
