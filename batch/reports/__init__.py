"""Reports: the safe workbook writer and the run workbook."""
