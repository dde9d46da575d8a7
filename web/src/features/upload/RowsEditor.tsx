import { ActionIcon, Button, Group, Stack, Text, TextInput } from "@mantine/core";
import { IconPlus, IconTrash } from "@tabler/icons-react";

import type { Row, RowProblems } from "./formModel";

/** Key/value pairs (labels, metrics) as rows of two inputs, each with its own message. */
export function RowsEditor({
  legend,
  description,
  rows,
  problems,
  groupProblem,
  keyLabel,
  valueLabel,
  keyPlaceholder,
  valuePlaceholder,
  valueInputMode,
  addLabel,
  onChange,
  onTouched,
  disabled,
}: {
  legend: string;
  description: string;
  rows: Row[];
  problems: RowProblems[];
  groupProblem?: string | undefined;
  keyLabel: string;
  valueLabel: string;
  keyPlaceholder: string;
  valuePlaceholder: string;
  valueInputMode?: "decimal" | "text";
  addLabel: string;
  onChange: (rows: Row[]) => void;
  onTouched: () => void;
  disabled?: boolean;
}) {
  const update = (index: number, patch: Partial<Row>) => {
    onTouched();
    onChange(rows.map((row, i) => (i === index ? { ...row, ...patch } : row)));
  };
  return (
    <fieldset style={{ border: 0, padding: 0, margin: 0, minWidth: 0 }} disabled={disabled}>
      <legend style={{ padding: 0 }}>
        <Text fw={500} size="sm">
          {legend}
        </Text>
      </legend>
      <Text size="xs" c="dimmed" mb={6}>
        {description}
      </Text>
      <Stack gap={6}>
        {rows.map((row, i) => (
          <Group key={i} gap={6} align="flex-start" wrap="nowrap">
            <TextInput
              aria-label={`${keyLabel} ${i + 1}`}
              placeholder={keyPlaceholder}
              value={row.key}
              onChange={(e) => {
                update(i, { key: e.currentTarget.value });
              }}
              error={problems[i]?.key}
              style={{ flex: "1 1 45%", minWidth: 0 }}
              spellCheck={false}
              autoComplete="off"
            />
            <TextInput
              aria-label={`${valueLabel} ${i + 1}`}
              placeholder={valuePlaceholder}
              value={row.value}
              inputMode={valueInputMode}
              onChange={(e) => {
                update(i, { value: e.currentTarget.value });
              }}
              error={problems[i]?.value}
              style={{ flex: "1 1 55%", minWidth: 0 }}
              autoComplete="off"
            />
            <ActionIcon
              variant="subtle"
              color="gray"
              size="lg"
              aria-label={`Remove ${keyLabel.toLowerCase()} ${i + 1}`}
              onClick={() => {
                onTouched();
                onChange(rows.filter((_, j) => j !== i));
              }}
            >
              <IconTrash size={16} aria-hidden />
            </ActionIcon>
          </Group>
        ))}
        {groupProblem && (
          <Text size="xs" c="red.9" role="alert">
            {groupProblem}
          </Text>
        )}
        <Group>
          <Button
            variant="subtle"
            size="xs"
            leftSection={<IconPlus size={14} aria-hidden />}
            onClick={() => {
              onChange([...rows, { key: "", value: "" }]);
            }}
          >
            {addLabel}
          </Button>
        </Group>
      </Stack>
    </fieldset>
  );
}
