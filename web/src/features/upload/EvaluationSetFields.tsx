import { FileInput, Paper, Stack, Text, TextInput, Title } from "@mantine/core";
import { IconTable } from "@tabler/icons-react";

import { formatBytes } from "../../components/format";
import { MAX_EVALUATION_SET_BYTES } from "./fileChecks";

/**
 * The optional evaluation set (Parquet) and its label column: the validation worker
 * reproduces the claimed metrics on it. Without one the metrics are shown as not verified.
 */
export function EvaluationSetFields({
  file,
  onPick,
  problem,
  labelColumn,
  onLabelColumn,
  labelColumnProblem,
  disabled,
}: {
  file: File | null;
  onPick: (file: File | null) => void;
  problem: string | null;
  labelColumn: string;
  onLabelColumn: (value: string) => void;
  labelColumnProblem: string | undefined;
  disabled: boolean;
}) {
  return (
    <Paper withBorder radius="md" p="md">
      <Stack gap="md">
        <Title order={2} size="h4">
          Evaluation set{" "}
          <Text span c="dimmed" inherit fw={400}>
            (optional)
          </Text>
        </Title>
        <Text size="sm" c="dimmed">
          Rows the model was not trained on: its input columns and a label column. The registry reproduces the metrics
          you claim on them; without an evaluation set the claimed metrics are not verified.
        </Text>
        <FileInput
          label="Evaluation set (Parquet)"
          description={`A .parquet file of at most ${formatBytes(MAX_EVALUATION_SET_BYTES)}.`}
          placeholder="Choose a .parquet file…"
          accept=".parquet"
          leftSection={<IconTable size={16} aria-hidden />}
          value={file}
          onChange={onPick}
          clearable
          clearButtonProps={{ "aria-label": "Remove the evaluation set" }}
          fileInputProps={{ "aria-label": "Evaluation set file" }}
          error={problem}
          disabled={disabled}
          // Mantine draws this placeholder as text (not ::placeholder): the theme's placeholder
          // grey is below 4.5:1 for it, so it takes the dimmed grey (axe, e2e/support/a11y.ts).
          styles={{ placeholder: { color: "var(--mantine-color-dimmed)" } }}
        />
        <TextInput
          label="Label column"
          description="The column holding the true labels; “label” when left empty."
          placeholder="label"
          value={labelColumn}
          onChange={(e) => {
            onLabelColumn(e.currentTarget.value);
          }}
          error={labelColumnProblem}
          disabled={disabled}
          spellCheck={false}
          autoComplete="off"
        />
      </Stack>
    </Paper>
  );
}
