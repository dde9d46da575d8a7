import { Anchor, Group, Stack, Text } from "@mantine/core";
import { Link } from "react-router";

import { StatusBadge } from "../../components/StatusBadge";
import type { ValidationReportJson } from "../../gen/mlplane/v1/model_registry_pb";
import { Fact } from "../models/ModelPage";
import { reportSummary, type ValidationState, validationStateSentence } from "../models/validation";

/** A card's validation at a glance: its state in words and one line on metrics and compatibility. */
export function ValidationSummary({
  state,
  report,
  hasEvaluationSet,
  reportUrl,
  title,
}: {
  state: ValidationState;
  report: ValidationReportJson | undefined;
  hasEvaluationSet: boolean;
  reportUrl: string;
  /** The card's title, to tell its link from the other cards'. */
  title: string;
}) {
  const settled = state === "PASSED" || state === "FAILED";
  const summary = reportSummary(report, hasEvaluationSet);
  return (
    <Fact label="Validation">
      <Stack gap={4}>
        <Group gap="xs" wrap="wrap" role="status" aria-live="polite">
          <StatusBadge status={state} size="sm" />
          <Text size="sm" style={{ overflowWrap: "anywhere" }}>
            {settled && summary ? summary : validationStateSentence(state, report?.attempts)}
          </Text>
        </Group>
        <Anchor component={Link} to={reportUrl} size="sm" aria-label={`See the validation report of ${title}`}>
          See the validation report
        </Anchor>
      </Stack>
    </Fact>
  );
}
