#pragma once
// Shared by the shortcut-alarm e2e tests: the alarms of a results database by task, each printed
// with its numbers (results::shortcut_alarm_numbers) so that a run's log shows what was measured.

#include <cstdio>
#include <map>
#include <string>

#include "radprobe/results/results.hpp"

namespace radprobe::test {

inline std::map<std::string, results::ShortcutAlarm> alarms_by_task(results::ResultsDb& db) {
    std::map<std::string, results::ShortcutAlarm> out;
    for (auto& a : results::read_shortcut_alarms(db)) {
        std::printf("[measured] %s: %s; alarm %s\n", a.task.c_str(),
                    results::shortcut_alarm_numbers(a).c_str(), a.alarm ? "yes" : "no");
        out[a.task] = a;
    }
    return out;
}

}  // namespace radprobe::test
