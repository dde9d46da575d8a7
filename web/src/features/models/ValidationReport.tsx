import { Group, Loader, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { type ReactNode, useId } from "react";

import { isValidationSettled, useValidationReport } from "../../api/api";
import { asApiError } from "../../api/errors";
import { ErrorAlert } from "../../components/ErrorAlert";
import { TableSkeleton } from "../../components/Loading";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import type { ModelVersionJson, ValidationReportJson } from "../../gen/mlplane/v1/model_registry_pb";
import { Fact } from "./ModelPage";
import { CompatibilityView } from "./ValidationCompatibility";
import { MetricsVerificationView } from "./ValidationMetrics";
import { RuntimeCheckView } from "./ValidationRuntime";
import { NO_EVALUATION_SET, validationStateSentence } from "./validation";
import { Section } from "./VersionSections";

function Part({ title, children }: { title: string; children: ReactNode }) {
  const headingId = useId();
  return (
    <section aria-labelledby={headingId} style={{ minWidth: 0 }}>
      <Title order={3} size="h5" id={headingId} mb={6}>
        {title}
      </Title>
      {children}
    </section>
  );
}

function Missing({ children }: { children: ReactNode }) {
  return (
    <Text size="sm" c="dimmed">
      {children}
    </Text>
  );
}

function StateLine({ report }: { report: ValidationReportJson }) {
  const settled = isValidationSettled(report.state);
  return (
    // Polled while it runs: a change of state is announced.
    <div role="status" aria-live="polite">
      <Group gap="sm" wrap="wrap">
        <StatusBadge status={report.state} size="lg" />
        {!settled && <Loader size="xs" aria-hidden />}
        <Text size="sm">{validationStateSentence(report.state, report.attempts)}</Text>
      </Group>
      {report.state === "FAILED" && (report.reason || report.message) && (
        <Text size="sm" mt="xs" c="red.9" style={{ overflowWrap: "anywhere" }}>
          {report.reason && (
            <>
              Reason:{" "}
              <Text span ff="monospace" fw={600} inherit>
                {report.reason}
              </Text>
              {report.message ? ". " : ""}
            </>
          )}
          {report.message}
        </Text>
      )}
    </div>
  );
}

function ReportBody({ report, hasEvaluationSet }: { report: ValidationReportJson; hasEvaluationSet: boolean }) {
  const settled = isValidationSettled(report.state);
  return (
    <Stack gap="lg">
      <StateLine report={report} />
      <SimpleGrid cols={{ base: 2, md: 4 }} spacing="md">
        <Fact label="Queued">
          <Time value={report.createTime} />
        </Fact>
        <Fact label="Started">
          <Time value={report.startTime} />
        </Fact>
        <Fact label="Completed">
          <Time value={report.completeTime} />
        </Fact>
        <Fact label="Attempts">{report.attempts ?? 0}</Fact>
      </SimpleGrid>
      <Part title="ONNX Runtime check">
        {report.runtime ? (
          <RuntimeCheckView runtime={report.runtime} />
        ) : (
          <Missing>{settled ? "The model was not run." : "Not run yet."}</Missing>
        )}
      </Part>
      <Part title="Metric verification">
        {report.metrics ? (
          <MetricsVerificationView metrics={report.metrics} />
        ) : !hasEvaluationSet ? (
          <Missing>{NO_EVALUATION_SET}</Missing>
        ) : (
          <Missing>
            {settled
              ? "The evaluation set was not evaluated: the validation stopped before it."
              : "Not verified yet: the evaluation set is used once the model has run."}
          </Missing>
        )}
      </Part>
      <Part title="Compatibility">
        {report.compatibility ? (
          <CompatibilityView compatibility={report.compatibility} />
        ) : (
          <Missing>{settled ? "Not compared with an approved version." : "Not compared yet."}</Missing>
        )}
      </Part>
    </Stack>
  );
}

/** The version's validation report, asked for again every two seconds until it is settled. */
export function ValidationSection({ version }: { version: ModelVersionJson }) {
  const modelId = version.modelId ?? "";
  const number = version.version ?? "";
  const query = useValidationReport({ modelId, version: number }, { skip: !modelId || !number });
  let body: ReactNode;
  if (query.error) {
    const error = asApiError(query.error);
    const absent =
      error.httpStatus === 501 ||
      (error.httpStatus === 404 && error.reason !== "MODEL_NOT_FOUND" && error.reason !== "VERSION_NOT_FOUND");
    body = absent ? (
      <Missing>No validation report is available for this version.</Missing>
    ) : (
      <ErrorAlert error={error} onRetry={() => void query.refetch()} />
    );
  } else if (!query.data) {
    body = <TableSkeleton rows={3} />;
  } else {
    body = <ReportBody report={query.data} hasEvaluationSet={Boolean(version.hasEvaluationSet)} />;
  }
  return <Section title="Validation">{body}</Section>;
}
